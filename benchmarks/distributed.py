"""Data-parallel throughput: 1 process with 2 threads against 2 ranks with 1 thread each (docs/distributed.md).

    python benchmarks/distributed.py --model mini --batch 128 --steps 20
    python benchmarks/distributed.py --model paper --batch 16 --steps 5 --json out.json

For each model it prints training images/s of both set-ups (the same global batch), and for the
two ranks: the communication time of one step's buckets measured alone (all-reduces back to back,
no compute), the part of it backward still waited for (the exposed time), and so how much the
overlap hid. Run it on a quiet machine: the figures are meaningless while other work shares the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
    """One process of a measurement: time ``steps`` training steps after two warm-up steps."""
    import numpy as np  # noqa: PLC0415 - only the measured worker processes load minidl; the launcher stays light

    import alexnet  # noqa: PLC0415 - only the measured worker processes load minidl; the launcher stays light
    import minidl as md  # noqa: PLC0415 - only the measured worker processes load minidl; the launcher stays light
    import minidl.distributed as dist  # noqa: PLC0415 - only the measured worker processes load minidl; the launcher stays light
    import minidl.functional as F  # noqa: PLC0415 - only the measured worker processes load minidl; the launcher stays light
    from minidl import nn, optim  # noqa: PLC0415 - only the measured worker processes load minidl; the launcher stays light

    world = 1
    if dist.launcher_world_size() > 1:
        dist.init_process_group(backend="mpi")
        world = dist.get_world_size()
    md.manual_seed(0)
    model = alexnet.build(args.model, 10)
    train = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    local = args.batch // world
    rng = np.random.default_rng(1)
    x = md.tensor(rng.standard_normal((local, *model.input_shape)).astype(np.float32))
    y = rng.integers(0, 10, local)
    exposed = [0.0]
    if world > 1:    # time what backward waits for once the last bucket has started
        finish = train._finish

        def timed_finish():
            t = time.perf_counter()
            finish()
            exposed[0] += time.perf_counter() - t
        train._finish = timed_finish

    def step():
        loss = F.cross_entropy(train(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    exposed[0] = 0.0
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    result = {"model": args.model, "world": world, "global_batch": local * world, "steps": args.steps,
              "images_per_s": local * world * args.steps / seconds, "step_s": seconds / args.steps}
    if world > 1:
        dist.barrier()
        t = time.perf_counter()
        for _ in range(args.steps):
            for bucket in train._buckets:
                dist.all_reduce(bucket.flat)
        alone = (time.perf_counter() - t) / args.steps
        wait = exposed[0] / args.steps
        result.update(buckets=len(train._buckets), comm_alone_s=alone, comm_exposed_s=wait,
                      comm_share_of_step=wait / result["step_s"], hidden_by_overlap=max(0.0, 1 - wait / alone))
    if world == 1 or dist.get_rank() == 0:
        print("RESULT " + json.dumps(result), flush=True)


def measure(args, model, ranks):
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_THREAD_TIMEOUT="1")
    threads = str(max(1, args.cores // ranks))
    env.update(OMP_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    command = [sys.executable, __file__, "--worker", "--model", model, "--batch", str(args.batch),
               "--steps", str(args.steps)]
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        command = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(ranks), *command]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="mini and/or paper (default: both)")
    p.add_argument("--batch", type=int, default=64, help="global batch")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--cores", type=int, default=2, help="cores shared out: 1 x cores threads or 2 x cores/2")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.model = args.model[0]
        return worker(args)
    results = []
    for model in args.model or ["mini", "paper"]:
        one, two = measure(args, model, 1), measure(args, model, 2)
        results += [one, two]
        print(f"{model}: batch {args.batch}: 1 process x {args.cores} threads {one['images_per_s']:.1f} img/s; "
              f"2 ranks x {max(1, args.cores // 2)} thread(s) {two['images_per_s']:.1f} img/s "
              f"({two['images_per_s'] / one['images_per_s']:.2f}x); {two['buckets']} buckets, communication "
              f"{1e3 * two['comm_alone_s']:.1f} ms alone, {1e3 * two['comm_exposed_s']:.1f} ms exposed "
              f"({100 * two['comm_share_of_step']:.1f}% of a step; overlap hid {100 * two['hidden_by_overlap']:.0f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
