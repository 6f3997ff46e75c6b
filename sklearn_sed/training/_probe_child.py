"""The child process of the training probe.

See :func:`~sklearn_sed.training.fast_path.choose_training_path`.

Reads a JSON spec on standard input, runs a few optimizer steps of the
network in eager float32 and in the candidate set-up from the same weights
and batch, and prints one JSON line: the largest relative difference of the
losses, the relative L2 difference of the first step's gradients, and the
median seconds a step of each. Run only by the probe: if the candidate's
kernels abort, this process dies and the probe reads the signal.
"""

import copy
import json
import statistics
import sys
import time

import torch


def _steps(module, x, dtype, compiled, n_steps, device_type):
    """Losses, first gradient and step times of ``n_steps`` + 1 SGD steps."""
    module = copy.deepcopy(module).train()
    forward = torch.compile(module, dynamic=False) if compiled else module
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)
    losses, grad, seconds = [], None, []
    for step in range(n_steps + 1):  # step 0 warms up (compiles)
        started = time.perf_counter()
        optimizer.zero_grad()
        with torch.autocast(
            device_type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"
        ):
            frames, clips = forward(x)
        # The library's loss is float32 binary cross-entropy on both outputs.
        frames, clips = frames.float(), clips.float()
        loss = torch.nn.functional.binary_cross_entropy(
            frames.clamp(1e-7, 1 - 1e-7), torch.full_like(frames, 0.25)
        ) + torch.nn.functional.binary_cross_entropy(
            clips.clamp(1e-7, 1 - 1e-7), torch.full_like(clips, 0.5)
        )
        loss.backward()
        if step == 0:
            grad = torch.cat(
                [
                    p.grad.detach().flatten().float()
                    for p in module.parameters()
                    if p.grad is not None
                ]
            )
        optimizer.step()
        if device_type == "cuda":
            torch.cuda.synchronize()
        losses.append(float(loss))
        if step > 0:
            seconds.append(time.perf_counter() - started)
    return losses, grad, statistics.median(seconds)


def main():
    spec = json.loads(sys.stdin.read())
    device = torch.device(spec["device"])
    torch.manual_seed(0)
    module = torch.load(spec["module"], weights_only=False).to(device)
    x = torch.rand(spec["batch_size"], *spec["input_shape"], device=device)
    ref_losses, ref_grad, ref_seconds = _steps(
        module, x, "float32", False, spec["steps"], device.type
    )
    losses, grad, seconds = _steps(
        module, x, spec["dtype"], spec["compile"], spec["steps"], device.type
    )
    loss_diff = max(
        abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, ref_losses, strict=True)
    )
    grad_diff = float((grad - ref_grad).norm() / ref_grad.norm().clamp_min(1e-12))
    print(
        json.dumps(
            {
                "loss_rel_diff": loss_diff,
                "grad_rel_diff": grad_diff,
                "step_seconds": seconds,
                "eager_float32_step_seconds": ref_seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
