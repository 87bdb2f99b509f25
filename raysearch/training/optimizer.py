"""AdamW for the training step: torch's for an eager step, CapturableAdamW (learning rate and
beta1 in device tensors a schedule fills) for a step captured as one CUDA graph; and optimizer
state that moves between the two (a checkpoint resumes graphed or eager, on a GPU or a CPU).
"""

from __future__ import annotations

import torch

BETAS = (0.9, 0.999)  # AdamW's; a schedule may move beta1 (one-cycle), every trial starts from these


class CapturableAdamW(torch.optim.AdamW):
    """torch.optim.AdamW's update, written with multi-tensor (foreach) kernels that take the
    learning rate and beta1 as device tensors: capturable in a CUDA graph while a schedule moves
    both (one-cycle moves beta1). torch's own capturable AdamW either reads a tensor beta1 back to
    the host (its foreach form: a capture forbids that) or launches a dozen kernels per parameter
    (its single-tensor form: markedly slower in a graph, BENCHMARKS.md "GPU"). Same state (step,
    exp_avg, exp_avg_sq) and param groups as AdamW, so checkpoints move between the two;
    tests/test_step.py checks the updates against torch.optim.AdamW under a one-cycle schedule."""

    def __init__(self, params, lr: torch.Tensor, beta1: torch.Tensor, weight_decay: float):
        super().__init__(
            params,
            lr=lr,
            betas=(beta1, torch.tensor(BETAS[1], device=beta1.device)),
            weight_decay=weight_decay,
            foreach=False,
            capturable=True,
        )
        for group in self.param_groups:  # beta2 stays constant: a float
            group["betas"] = (group["betas"][0], BETAS[1])
        # the tensors a captured step reads, whatever a scheduler later writes into the groups
        self.lr_tensor, self.beta1_tensor = self.param_groups[0]["lr"], self.param_groups[0]["betas"][0]

    def keep_tensor_hyperparameters(self) -> None:
        """Put the device tensors back where a scheduler or load_state_dict wrote plain floats
        (OneCycleLR sets betas to a new tuple), filling them with those floats (no host sync)."""
        for group in self.param_groups:
            if not torch.is_tensor(group["lr"]):
                self.lr_tensor.fill_(group["lr"])
                group["lr"] = self.lr_tensor
            b1, b2 = group["betas"]
            if not torch.is_tensor(b1):
                self.beta1_tensor.fill_(b1)
                group["betas"] = (self.beta1_tensor, b2)

    @torch.no_grad()
    def step(self, closure=None) -> None:  # type: ignore[override]  # no closure: one loss per step, computed by TrainStep
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:  # AdamW's state, capturable: the step count on the device
                    self.state[p].update(
                        step=torch.zeros((), dtype=torch.float32, device=p.device),
                        exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                        exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format),
                    )
            grads = [p.grad for p in params]
            steps = [self.state[p]["step"] for p in params]
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            torch._foreach_add_(steps, 1)
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])  # decoupled weight decay
            torch._foreach_mul_(m, beta1)
            torch._foreach_add_(m, torch._foreach_mul(grads, 1 - beta1))
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
            step = steps[0]  # every parameter of a group steps together
            bias1, bias2_sqrt = 1 - beta1**step, (1 - beta2**step).sqrt()
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, bias2_sqrt)
            torch._foreach_add_(denom, eps)
            torch._foreach_mul_(denom, -bias1 / lr)  # param -= lr / bias1 * m / denom
            torch._foreach_addcdiv_(params, m, denom)


def make_optimizer(params, lr: float, weight_decay: float, graphed: bool) -> torch.optim.AdamW:
    """AdamW; graphed: CapturableAdamW, whose learning rate and beta1 live in device tensors the
    schedule fills, so a replayed graph follows the schedule without recapturing."""
    if not graphed:
        return torch.optim.AdamW(params, lr=lr, betas=BETAS, weight_decay=weight_decay)
    params = list(params)
    device = params[0].device
    return CapturableAdamW(
        params, torch.tensor(lr, device=device), torch.tensor(BETAS[0], device=device), weight_decay
    )


IMPLEMENTATION = ("capturable", "foreach", "fused", "differentiable")  # how a step runs, not what it does


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict | None) -> None:
    """Load a saved state (None: a fresh one), whichever way the saving optimizer ran.

    An optimizer a captured graph uses is loaded in place (the graph holds the addresses of its
    moment tensors). Otherwise the usual way, keeping this optimizer's own implementation flags
    (a checkpoint of a graphed trial resumes eagerly on a CPU, and the reverse) and, when it is
    capturable, its step counts on the device as capturable AdamW needs them."""
    if not optimizer.state:
        if state is None:
            return
        flags = [{k: g[k] for k in IMPLEMENTATION if k in g} for g in optimizer.param_groups]
        optimizer.load_state_dict(state)
        for group, own in zip(optimizer.param_groups, flags, strict=True):
            group.update(own)
            for p in group["params"] if group.get("capturable") else []:
                if "step" in optimizer.state[p]:
                    optimizer.state[p]["step"] = optimizer.state[p]["step"].to(p.device, torch.float32)
        return
    params = [p for g in optimizer.param_groups for p in g["params"]]
    with torch.no_grad():
        for i, p in enumerate(params):
            for k, v in optimizer.state[p].items():
                if state is None:
                    v.zero_()
                else:
                    v.copy_(state["state"][i][k])
    for group, saved in zip(optimizer.param_groups, state["param_groups"] if state else [], strict=False):
        # plain floats here; CapturableAdamW.keep_tensor_hyperparameters fills its tensors with them
        group["lr"], group["betas"] = float(saved["lr"]), (float(saved["betas"][0]), group["betas"][1])


def portable_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """A copy of optimizer.state_dict() with device-tensor hyperparameters as floats: a checkpoint
    resumes anywhere (graphed or eager, GPU or CPU)."""
    state = optimizer.state_dict()
    # copies: a reused step overwrites its tensors in place when the next trial starts
    state["state"] = {i: {k: v.clone() for k, v in st.items()} for i, st in state["state"].items()}
    groups = []
    for g in state["param_groups"]:
        g = dict(g)
        g["lr"] = float(g["lr"])
        g["betas"] = tuple(float(b) for b in g["betas"])  # torch.optim wants both floats or both tensors
        groups.append(g)
    return {**state, "param_groups": groups}
