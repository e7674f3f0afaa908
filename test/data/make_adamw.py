"""Reference values for test/train/optimizer.test.ts: torch.optim.AdamW (decoupled weight decay)
on a 2-d weight (decayed) and a bias (not decayed), three steps with fixed gradients.
Made with Debian's python3-torch 1.13: /usr/bin/python3 test/data/make_adamw.py > test/data/adamw.json"""
import json, torch
torch.manual_seed(0)
w = torch.nn.Parameter(torch.randn(2, 3)); b = torch.nn.Parameter(torch.randn(3))
init = {'w': w.detach().flatten().tolist(), 'b': b.detach().tolist()}
opt = torch.optim.AdamW([{'params': [w], 'weight_decay': 0.1}, {'params': [b], 'weight_decay': 0.0}], lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
grads, lrs, after = [], [0.01, 0.005, 0.002], []
for step, lr in enumerate(lrs):
    for g in opt.param_groups: g['lr'] = lr
    gw = torch.randn(2, 3); gb = torch.randn(3)
    w.grad = gw.clone(); b.grad = gb.clone()
    opt.step()
    grads.append({'w': gw.flatten().tolist(), 'b': gb.tolist()})
    after.append({'w': w.detach().flatten().tolist(), 'b': b.detach().tolist()})
print(json.dumps({'torch': torch.__version__, 'init': init, 'lrs': lrs, 'weight_decay': 0.1, 'grads': grads, 'after': after}))
