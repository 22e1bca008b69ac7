#!/usr/bin/python3
"""PyTorch side of scripts/bench-vs-pytorch: the same models, batches,
thread count, modes and timing rules as `prunebench bench --tsv`, with
output lines in the same format:

    result <model> <batch> train|infer <images/s> <GFLOP/s> <spread>

VGG-S and ResNet-S mirror experiments/models/vgg-s.ini and resnet-s.ini
(convs without bias, BN, ReLU, max pools / global average pool, flatten,
linear). Training: forward, cross-entropy, zero_grad, backward, SGD with
our default recipe (momentum 0.9, Nesterov, weight decay 5e-4 on conv and
linear weights only). Inference: eval mode under torch.no_grad().
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn as nn


def vgg_s():
    layers, c = [], 1
    for o in [16, 16, 'M', 32, 32, 'M', 64, 64, 'M']:
        if o == 'M':
            layers.append(nn.MaxPool2d(2))
            continue
        layers += [nn.Conv2d(c, o, 3, padding=1, bias=False),
                   nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
        c = o
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(576, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                    nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (self.sc(x) if self.sc is not None else x))


def resnet_s():
    return nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                         Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 10))


MODELS = {'vgg-s': vgg_s, 'resnet-s': resnet_s}


def macs(model):
    """MACs of one sample's conv and linear work, as pb_model_count_macs."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out.numel() * mod.in_channels * mod.kernel_size[0] * \
                mod.kernel_size[1] // mod.groups
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features
    hs = [m.register_forward_hook(hook) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in hs:
        h.remove()
    return total


CLOCK = time.perf_counter


def time_steps(step, batch, warmup, iters, repeats):
    for _ in range(warmup):
        step()
    if iters == 0:
        t0, n = CLOCK(), 0
        while True:
            step()
            n += 1
            dt = CLOCK() - t0
            if dt >= 0.05:
                break
        iters = max(3, int(0.25 * n / dt))
    v = []
    for _ in range(repeats):
        t0 = CLOCK()
        for _ in range(iters):
            step()
        v.append(iters * batch / (CLOCK() - t0))
    med = statistics.median(v)
    return med, (max(v) - min(v)) / med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', action='append', choices=sorted(MODELS))
    ap.add_argument('--batch', action='append', type=int)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--iters', type=int, default=0)
    ap.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                    help='cpu: the process CPU time (as PB_BENCH_CLOCK=cpu)')
    a = ap.parse_args()
    if a.clock == 'cpu':
        global CLOCK
        CLOCK = time.process_time
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    print('torch\t%s, %d threads' % (torch.__version__,
                                     torch.get_num_threads()))
    for name in a.model or ['vgg-s', 'resnet-s']:
        model = MODELS[name]()
        gflop = 2e-9 * macs(model)
        decay = [p for n, p in model.named_parameters()
                 if p.dim() > 1]
        rest = [p for n, p in model.named_parameters() if p.dim() <= 1]
        opt = torch.optim.SGD([{'params': decay, 'weight_decay': 5e-4},
                               {'params': rest, 'weight_decay': 0.0}],
                              lr=1e-6, momentum=0.9, nesterov=True)
        lossf = nn.CrossEntropyLoss()
        for b in a.batch or [128, 1]:
            x = torch.rand(b, 1, 28, 28) * 2 - 1
            y = torch.randint(0, 10, (b,))

            def train_step():
                opt.zero_grad()
                lossf(model(x), y).backward()
                opt.step()

            def infer_step():
                with torch.no_grad():
                    model(x)
            model.train()
            ips, sp = time_steps(train_step, b, 3, a.iters, a.repeats)
            print('result\t%s\t%d\ttrain\t%.1f\t%.2f\t%.3f' %
                  (name, b, ips, 3 * gflop * ips, sp))
            model.eval()
            ips, sp = time_steps(infer_step, b, 3, a.iters, a.repeats)
            print('result\t%s\t%d\tinfer\t%.1f\t%.2f\t%.3f' %
                  (name, b, ips, gflop * ips, sp))
            sys.stdout.flush()


if __name__ == '__main__':
    main()
