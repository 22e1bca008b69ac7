#!/usr/bin/python3
"""PyTorch side of scripts/dense-vs-pytorch: trains VGG-S (as
experiments/models/vgg-s.ini) on Fashion-MNIST with the recipe prunebench
trains it with, and prints one line per seed:

    result pytorch <seed> <test top-1> <final train loss>

The recipe mirrors prunebench's: SGD with momentum (Nesterov optional),
weight decay on every parameter or on conv/linear weights only, the
learning rate following prunebench's cosine per iteration (pb_recipe_lr)
with no warm-up, batches drawn from a permutation per epoch, pixels
normalised by the training file's mean and standard deviation. What may
differ on purpose, to find what a gap comes from: the conv initialisation
(PyTorch's default, or torchvision's kaiming-normal fan-out as
prunebench's default) and whether the last partial batch of an epoch is
dropped (prunebench drops it; PyTorch's DataLoader keeps it).

Only scripts/dense-vs-pytorch runs this; PyTorch is never a dependency of
prunebench's build or main job.
"""
import argparse
import gzip
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

DATA = '/usr/share/datasets/fashion-mnist'


def idx(path):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack('>HBB', raw[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit('%s: not an unsigned-byte IDX file' % path)
    dims = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data):
    def pair(kind):
        x = idx('%s/%s-images-idx3-ubyte.gz' % (data, kind))
        y = idx('%s/%s-labels-idx1-ubyte.gz' % (data, kind))
        return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1), \
            torch.from_numpy(y.astype(np.int64))
    xtr, ytr = pair('train')
    xte, yte = pair('t10k')
    mean, std = xtr.mean().item(), xtr.std().item()
    return (xtr - mean) / std, ytr, (xte - mean) / std, yte


def vgg_s(init):
    layers, c = [], 1
    for o in [16, 16, 'M', 32, 32, 'M', 64, 64, 'M']:
        if o == 'M':
            layers.append(nn.MaxPool2d(2))
            continue
        conv = nn.Conv2d(c, o, 3, padding=1, bias=False)
        if init == 'kaiming_out':
            nn.init.kaiming_normal_(conv.weight, mode='fan_out',
                                    nonlinearity='relu')
        layers += [conv, nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
        c = o
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(576, 10))


def lr_at(a, t):
    """pb_recipe_lr: cosine from lr to min_lr over the epochs."""
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * t /
                                                            a.epochs))


def train(a, seed, data):
    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = vgg_s(a.init)
    decay, rest = [], []
    for name, p in model.named_parameters():
        is_weight = name.endswith('weight') and p.dim() > 1
        (decay if is_weight or a.decay_all else rest).append(p)
    opt = torch.optim.SGD([{'params': decay, 'weight_decay': a.wd},
                           {'params': rest, 'weight_decay': 0.0}],
                          lr=a.lr, momentum=a.momentum, nesterov=a.nesterov)
    loss_fn = nn.CrossEntropyLoss()
    n = xtr.shape[0]
    steps = n // a.batch if a.drop_last else -(-n // a.batch)
    gen = torch.Generator().manual_seed(seed)
    loss_sum = seen = 0
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum = seen = 0.0
        for s in range(steps):
            for g in opt.param_groups:
                g['lr'] = lr_at(a, epoch + s / steps)
            i = perm[s * a.batch:(s + 1) * a.batch]
            opt.zero_grad()
            loss = loss_fn(model(xtr[i]), ytr[i])
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(i)
            seen += len(i)
    model.eval()
    hits = 0
    with torch.no_grad():
        for k in range(0, xte.shape[0], 1000):
            hits += (model(xte[k:k + 1000]).argmax(1) == yte[k:k + 1000]) \
                .sum().item()
    return hits / xte.shape[0], loss_sum / seen


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3, 4, 5])
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--min-lr', dest='min_lr', type=float, default=0.0)
    p.add_argument('--momentum', type=float, default=0.9)
    p.add_argument('--nesterov', action='store_true')
    p.add_argument('--wd', type=float, default=5e-4)
    p.add_argument('--decay-all', dest='decay_all', action='store_true',
                   help='weight decay on every parameter (BN and biases too)')
    p.add_argument('--init', choices=['torch_default', 'kaiming_out'],
                   default='torch_default')
    p.add_argument('--drop-last', dest='drop_last', action='store_true')
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--data', default=DATA)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    data = load(a.data)
    for seed in a.seeds:
        acc, loss = train(a, seed, data)
        print('result pytorch %d %.4f %.4f' % (seed, acc, loss), flush=True)


if __name__ == '__main__':
    main()
