/* Softmax followed by cross-entropy against integer labels. */
#include <math.h>

#include "prunebench/layers.h"

/* logits (B,K), labels (B) -> probs (B,K); returns the mean loss. */
double pb_softmax_xent_forward(float *probs, const float *logits,
			       const uint8_t *labels, int B, int K,
			       int *correct)
{
	double loss = 0.0;
	int hits = 0;

	for (int b = 0; b < B; b++) {
		const float *z = logits + (size_t)b * K;
		float *p = probs + (size_t)b * K;
		int arg = 0;
		double sum = 0.0, logsum;

		for (int k = 1; k < K; k++)
			if (z[k] > z[arg])
				arg = k;
		/* Shifting by the row maximum keeps every exp() at most 1,
		 * so large logits cannot overflow. */
		for (int k = 0; k < K; k++)
			sum += exp((double)z[k] - z[arg]);
		logsum = log(sum);
		for (int k = 0; k < K; k++)
			p[k] = (float)exp((double)z[k] - z[arg] - logsum);
		/* -log p[label], from the logits rather than from the float
		 * probability, which underflows to 0 for confident mistakes. */
		loss += logsum - ((double)z[labels[b]] - z[arg]);
		hits += arg == labels[b];
	}
	if (correct)
		*correct = hits;
	return loss / B;
}

/* probs (B,K), labels (B) -> dlogits (B,K) = (probs - onehot) / B */
void pb_softmax_xent_backward(float *dlogits, const float *probs,
			      const uint8_t *labels, int B, int K)
{
	const float inv = 1.0f / (float)B;

	for (int b = 0; b < B; b++) {
		const float *p = probs + (size_t)b * K;
		float *g = dlogits + (size_t)b * K;

		for (int k = 0; k < K; k++)
			g[k] = p[k] * inv;
		g[labels[b]] -= inv;
	}
}
