"""Python side of torch_optim_test: real torch.optim (PyTorch 1.13, /usr/bin/python3).

  train.py prepare WORK   writes, for every optimizer config:
      init.pt            {'model_state_dict', 'x', 'y'}: the seeded initial weights and data
      CFG_py3.pt         the tutorial's general checkpoint after 3 steps (torch.save, zip)
      CFG_ref3.pt        model state_dict after 3 steps (what C++ training from init must reach)
      CFG_ref6.pt        model state_dict after 6 steps (the reference for resumed training)
  train.py verify WORK CFG...
      loads WORK/CFG_cpp3.pt (written by ckptio from C++ after 3 C++ steps) with plain
      torch.load, checks its optimizer_state_dict against the one Python itself writes
      after 3 steps (keys, value types, values), then resumes: a fresh model and a fresh
      optimizer built with deliberately wrong hyperparameters, load_state_dict for both,
      3 more steps, and compares the parameters with CFG_ref6.pt.
      Prints one 'RESULT CFG ok|FAIL ...' line per config; exit status 0 when all are ok.

The C++ test builds the same configs (keep CONFIGS and optim_test.cc's configs in step).
"""
import copy
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

STEPS = 3
# ckptio writes the optimizer layout of torch 1.x (Debian's 1.13): compared exactly there.
LAYOUT_WRITTEN = torch.__version__.startswith('1.')
RTOL, ATOL = 1e-5, 1e-6


def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def groups_of(model):
    # Two param groups: the first Linear (own lr) and the second (group defaults).
    return [{'params': list(model[0].parameters()), 'lr': 0.02},
            {'params': list(model[2].parameters())}]


# name -> (right(model), wrong(model)): 'wrong' has other hyperparameters, which loading the
# checkpoint's param_groups must replace.
O = torch.optim
CONFIGS = {
    'sgd_momentum': (lambda m: O.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01),
                     lambda m: O.SGD(m.parameters(), lr=1.0)),
    'sgd_nesterov': (lambda m: O.SGD(m.parameters(), lr=0.05, momentum=0.9, dampening=0.0,
                                     nesterov=True),
                     lambda m: O.SGD(m.parameters(), lr=1.0, momentum=0.5)),
    'adam': (lambda m: O.Adam(m.parameters(), lr=0.01),
             lambda m: O.Adam(m.parameters(), lr=1.0, betas=(0.5, 0.5))),
    'adam_amsgrad': (lambda m: O.Adam(m.parameters(), lr=0.01, amsgrad=True, weight_decay=0.01),
                     lambda m: O.Adam(m.parameters(), lr=1.0)),
    'adamw': (lambda m: O.AdamW(m.parameters(), lr=0.01),
              lambda m: O.AdamW(m.parameters(), lr=1.0, weight_decay=0.5)),
    'adamw_amsgrad': (lambda m: O.AdamW(m.parameters(), lr=0.01, amsgrad=True),
                      lambda m: O.AdamW(m.parameters(), lr=1.0)),
    'adam_groups': (lambda m: O.Adam(groups_of(m), lr=0.01, betas=(0.8, 0.99)),
                    lambda m: O.Adam(groups_of(m), lr=1.0)),
    'rmsprop': (lambda m: O.RMSprop(m.parameters(), lr=0.01, momentum=0.9, centered=True),
                lambda m: O.RMSprop(m.parameters(), lr=1.0)),
    'rmsprop_plain': (lambda m: O.RMSprop(m.parameters(), lr=0.01, alpha=0.9),
                      lambda m: O.RMSprop(m.parameters(), lr=1.0, centered=True)),
    'adagrad': (lambda m: O.Adagrad(m.parameters(), lr=0.05, lr_decay=0.01,
                                    initial_accumulator_value=0.1),
                lambda m: O.Adagrad(m.parameters(), lr=1.0)),
}


def train(model, opt, x, y, steps):
    loss = None
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    return loss.item()


def fresh(init):
    model = make_model()
    model.load_state_dict(init['model_state_dict'])
    return model, init['x'], init['y']


def prepare(work):
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    model = make_model()
    x = torch.randn(16, 4)
    y = torch.randn(16, 3)
    init = {'model_state_dict': model.state_dict(), 'x': x, 'y': y}
    torch.save(init, f'{work}/init.pt')
    for name, (right, _) in CONFIGS.items():
        model, x, y = fresh(init)
        opt = right(model)
        loss = train(model, opt, x, y, STEPS)
        torch.save({'epoch': STEPS, 'model_state_dict': model.state_dict(),
                    'optimizer_state_dict': opt.state_dict(), 'loss': loss},
                   f'{work}/{name}_py3.pt')
        torch.save(model.state_dict(), f'{work}/{name}_ref3.pt')
        train(model, opt, x, y, STEPS)
        torch.save(model.state_dict(), f'{work}/{name}_ref6.pt')


def max_rel_diff(a, b):
    return ((a - b).abs() / (b.abs() + ATOL / RTOL)).max().item()


def part_of(filled, key):
    """filled[key], or None where `filled` has no such part."""
    try:
        return filled[key] if filled is not None else None
    except (KeyError, IndexError, TypeError):
        return None


def same_plain(path, got, want):
    """Equal plain values; `fused` None (2.x's default) and False (1.13's) select the same
    implementation in torch's SGD and Adam family: not fused."""
    if path.endswith("['fused']") and got in (None, False) and want in (None, False):
        return True
    return type(got) is type(want) and got == want


def same_value(path, got, want, problems, filled=None):
    """Compares the C++-written optimizer state with Python's own, structurally.

    ckptio writes the layout of PyTorch 1.13 (Debian's). A newer Python writes more param_group
    keys (fused, differentiable, decoupled_weight_decay, ...) and keeps some steps as tensors.
    `filled` is what this Python holds after loading ours (its optimizers' __setstate__ fills
    such keys in and turns such steps into tensors): a difference is accepted only where that
    equals what Python writes itself, and key order is then not compared. verify() passes no
    `filled` under torch 1.x, whose layout ckptio writes: there the comparison is exact.
    """
    if torch.is_tensor(want):
        if not torch.is_tensor(got):
            # A number where Python has a 0-dim step tensor, which Python makes of it on load.
            if not (path.endswith("['step']") and isinstance(got, (int, float)) and
                    want.dim() == 0 and torch.is_tensor(filled)):
                problems.append(f'{path}: {type(got).__name__}, Python has a tensor')
            elif not float(got) == float(filled) == float(want):
                problems.append(f'{path}: {got!r}, Python has {float(want)!r}')
        elif got.dtype != want.dtype or got.shape != want.shape:
            problems.append(f'{path}: {got.dtype}{tuple(got.shape)}, Python has '
                            f'{want.dtype}{tuple(want.shape)}')
        elif not torch.allclose(got, want, rtol=RTOL, atol=ATOL):
            problems.append(f'{path}: values differ (max rel {max_rel_diff(got, want):.3g})')
    elif isinstance(want, dict):
        if not isinstance(got, dict):
            problems.append(f'{path}: {got!r}, Python has keys {list(want.keys())}')
            return
        filled_in = [k for k in want if k not in got and isinstance(filled, dict) and
                     k in filled and same_plain(f'{path}[{k!r}]', filled[k], want[k])]
        expected = [k for k in want if k not in filled_in]
        # The exact order where nothing was filled in (the layout ckptio mirrors); a newer
        # Python also orders some groups differently (AdamW's are Adam's since 2.7).
        same_keys = sorted(got) == sorted(expected) if filled_in else list(got) == expected
        if not same_keys:
            problems.append(f'{path}: keys {list(got.keys())}, Python has {list(want.keys())}')
            return
        for k in expected:
            same_value(f'{path}[{k!r}]', got[k], want[k], problems, part_of(filled, k))
    elif isinstance(want, (list, tuple)):
        if type(got) is not type(want) or len(got) != len(want):
            problems.append(f'{path}: {got!r}, Python has {want!r}')
            return
        for i, (g, w) in enumerate(zip(got, want)):
            same_value(f'{path}[{i}]', g, w, problems, part_of(filled, i))
    elif isinstance(want, bool) or want is None:
        if got is not want and (filled is None or not same_plain(path, got, want)):
            problems.append(f'{path}: {got!r}, Python has {want!r}')
    elif isinstance(want, (int, float)):
        # C++ options are doubles: 0.0 for Python's default int 0 is the same hyperparameter.
        if isinstance(got, bool) or not isinstance(got, (int, float)) or \
                abs(got - want) > 1e-12 * max(1.0, abs(want)):
            problems.append(f'{path}: {got!r}, Python has {want!r}')
        elif isinstance(want, int) and path.endswith("['step']") and not isinstance(got, int):
            problems.append(f'{path}: {got!r} (float), Python has int {want!r}')
    else:
        if got != want:
            problems.append(f'{path}: {got!r}, Python has {want!r}')


def verify(work, names):
    init = torch.load(f'{work}/init.pt')
    all_ok = True
    for name in names:
        right, wrong = CONFIGS[name]
        problems = []
        try:
            ck = torch.load(f'{work}/{name}_cpp3.pt')
            want = torch.load(f'{work}/{name}_py3.pt')
            if sorted(ck.keys()) != sorted(want.keys()):
                problems.append(f'checkpoint keys {list(ck.keys())}')
            if ck['epoch'] != STEPS:
                problems.append(f"epoch {ck['epoch']!r}")
            if abs(ck['loss'] - want['loss']) > 1e-5 * abs(want['loss']):
                problems.append(f"loss {ck['loss']!r}, Python has {want['loss']!r}")
            model, x, y = fresh(init)
            model.load_state_dict(ck['model_state_dict'])
            opt = wrong(model)
            opt.load_state_dict(copy.deepcopy(ck['optimizer_state_dict']))
            same_value('optimizer_state_dict', ck['optimizer_state_dict'],
                       want['optimizer_state_dict'], problems,
                       filled=None if LAYOUT_WRITTEN else opt.state_dict())
            train(model, opt, x, y, STEPS)
            ref = torch.load(f'{work}/{name}_ref6.pt')
            worst = 0.0
            for k, v in model.state_dict().items():
                d = max_rel_diff(v, ref[k])
                worst = max(worst, d)
                if not torch.allclose(v, ref[k], rtol=RTOL, atol=ATOL):
                    problems.append(f'after 6 steps {k} differs (max rel {d:.3g})')
        except Exception as e:  # noqa: BLE001 - reported per config
            problems.append(f'{type(e).__name__}: {e}')
            worst = float('nan')
        if problems:
            all_ok = False
            print(f'RESULT {name} FAIL ' + '; '.join(problems))
        else:
            print(f'RESULT {name} ok max_rel_diff={worst:.3g}')
    return 0 if all_ok else 1


if __name__ == '__main__':
    if len(sys.argv) >= 3 and sys.argv[1] == 'prepare':
        prepare(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == 'verify':
        sys.exit(verify(sys.argv[2], sys.argv[3:]))
    else:
        sys.exit(__doc__)
