/* The small model the experiment tests run (two conv-BN-ReLU-pool blocks
 * and a classifier on 1x28x28, 10 classes), and their common helpers. */
#ifndef PB_TESTS_EXPERIMENT_TINY_H
#define PB_TESTS_EXPERIMENT_TINY_H

static const char tiny_model[] =
	"[model]\nname = tiny\ninput = 1x28x28\nclasses = 10\n"
	"[conv1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[pool1]\ntype = maxpool\nkernel = 4\n"
	"[conv2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[bn2]\ntype = bn\n[relu2]\ntype = relu\n"
	"[pool2]\ntype = maxpool\nkernel = 7\n"
	"[flatten]\ntype = flatten\n[fc]\ntype = linear\nout = 10\n";

#endif
