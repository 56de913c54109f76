"""Training and evaluation of every method in 2 processes: ``accelerate launch`` (DDP over gloo on the CPU).

Each test launches one script of ``tests/distributed_scripts/`` that runs the method's real training entry point on a
tiny model built in code; every process writes what it saw (world size, loss history, a digest of its final weights,
its evaluation results) and the test checks that the world really had 2 processes, that the loss fell, that both
processes ended with identical weights and results, and that files were written once.

accelerate 1.15 runs ``accelerate launch --cpu --num_processes 2`` as ONE process (``--cpu`` selects its simple
launcher unless an MPI hostfile is given), so the launches use ``--multi_gpu``, which starts 2 processes with
torchrun; with no GPU visible our entry points (``use_cpu=True``) then join them over gloo.

The three launches start together (a module fixture) and each test waits for its own: they spend much of their time
importing, so together they take ~1 minute on 2 cores instead of ~1.5 one after the other.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).parent / "distributed_scripts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LAUNCHES = {"alpine": "alpine_finetune.py", "flab": "flab_recover.py", "xtc": "xtc_distill.py"}


def start(script: str, out: Path) -> subprocess.Popen:
    """``accelerate launch`` ``script`` in 2 processes, writing into ``out``."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), str(SCRIPTS / script), str(out),
    ]  # fmt: skip
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # the CPU path (gloo) even on a GPU machine
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out, env=env)


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    running = {}
    for name, script in LAUNCHES.items():
        out = tmp_path_factory.mktemp(f"ddp-{name}")
        running[name] = (start(script, out), out)
    yield running
    for process, _ in running.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def finish(launches, name: str, timeout: int = 600) -> tuple[list[dict], Path]:
    """Wait for launch ``name``; the JSON each process wrote (rank 0 first) and the output folder."""
    process, out = launches[name]
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stdout[-2000:] + stderr[-6000:]
    ranks = [json.loads((out / f"{name}-rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, entry in enumerate(ranks):
        assert (entry["rank"], entry["world_size"], entry["backend"]) == (rank, 2, "gloo")
    return ranks, out


def assert_falls(losses: list[float]) -> None:
    assert len(losses) >= 6
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses


def import_script(name: str):
    """A module of ``distributed_scripts`` (its functions run here, in one process, for comparison)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(SCRIPTS))


def test_alpine_finetune_mode_in_two_processes(launches):
    (first, second), tmp_path = finish(launches, "alpine")
    for entry in (first, second):
        assert entry["trainer_world_size"] == 2 and entry["steps"] == 16  # 64 samples / (4 x 2 processes) x 2 epochs
    assert first["losses"] == second["losses"]  # logged losses are averaged over the processes
    assert_falls(first["losses"])
    assert first["losses"][-1] < 0.5  # from ~0.9: the toy task is learnt
    assert first["digest"] == second["digest"]
    # evaluation: each process predicted half of the test set; metrics and ALPINE statistics cover all of it
    assert first["local_eval_sequences"] == second["local_eval_sequences"] == first["test_size"] // 2
    assert first["total_eval_sequences"] == first["test_size"]
    keys = ("accuracy", "f1", "eval_flops_ratio_analytic", "eval_kept_lengths", "eval_input_length", "emissions")
    assert {k: first["result"][k] for k in keys[:-1]} == {k: second["result"][k] for k in keys[:-1]}
    assert first["result"]["accuracy"] > 0.75
    assert first["result"]["eval_input_length"] == pytest.approx(first["test_mean_length"])
    # one codecarbon tracker for the one machine; the totals reach every process
    emissions = [entry["result"]["emissions"] for entry in (first, second)]
    assert emissions[0]["machines"] == emissions[1]["machines"] == 1
    assert emissions[0]["energy_kwh"] == emissions[1]["energy_kwh"] > 0
    # the fine-tuned model was saved once (no temporary folders left by a second writer), with its remote code
    assert {"modeling_alpine.py", "config.json", "model.safetensors"} <= set(os.listdir(tmp_path / "alpine_saved"))
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".alpine_saved")]


def test_flab_layer_search_and_recovery_in_two_processes(launches):
    single = import_script("flab_recover").layer_search()  # this process: one process, all 4 calibration micro-batches
    (first, second), tmp_path = finish(launches, "flab")

    # sharded layer search: 2 of the 4 micro-batches per process, same choices and KL as one process
    assert single["local_batches"] == 4
    for entry in (first, second):
        search = entry["search"]
        assert search["local_batches"] == 2
        assert search["removed"] == single["removed"]
        assert search["kl"] == pytest.approx(single["kl"], rel=1e-6, abs=1e-9)
        for step, expected in zip(search["scores"], single["scores"]):
            assert step == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert search["cosine_removed"] == single["cosine_removed"]
        cosine = {int(k): v for k, v in search["cosine_scores"].items()}
        assert cosine == pytest.approx(single["cosine_scores"], rel=1e-6, abs=1e-9)
        for got, expected in zip(search["importance"], single["importance"]):
            torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=1e-5, atol=1e-7)
    # the benchmark's quality and HumanEval loops: each process takes a share, every process reports the whole set
    metrics = import_script("flab_recover").benchmark_metrics()
    assert metrics["humaneval"]["passed_tasks"] == ["HumanEval/0", "HumanEval/2", "HumanEval/4"]
    assert first["metrics"]["humaneval"] == second["metrics"]["humaneval"] == metrics["humaneval"]
    assert (
        metrics["local_problems"] == 5
        and first["metrics"]["local_problems"] + second["metrics"]["local_problems"] == 5
    )
    for entry in (first, second):
        assert entry["metrics"]["quality"]["tokens"] == metrics["quality"]["tokens"] == 10 * 11
        assert entry["metrics"]["quality"] == pytest.approx(metrics["quality"], rel=1e-6)
    # flab_prune (its calibration sharded too) makes the same non-uniform model on both processes
    assert first["prune"] == second["prune"] and first["pruned_digest"] == second["pruned_digest"]
    assert first["pruned_type"] == "FlabLlamaForCausalLM"

    # LoRA recovery: 16 samples / (2 x 2 processes) x 2 epochs = 8 steps, identical on both processes
    assert first["steps"] == second["steps"] == 8
    assert first["losses"] == second["losses"]
    assert_falls(first["losses"])
    assert first["digest"] == second["digest"]
    assert len(first["kl_history"]) == 2 and second["kl_history"] == []  # KL to the dense model: main process only
    # peft checkpoints hold the adapter, not the model; the merged model was saved once, by the main process
    checkpoint = tmp_path / "flab_checkpoints" / "checkpoint-4"
    files = set(os.listdir(checkpoint))
    assert {"adapter_model.safetensors", "adapter_config.json", "rng_state_0.pth", "rng_state_1.pth"} <= files
    assert "model.safetensors" not in files
    from transformers import AutoModelForCausalLM

    digest = import_script("ddp_common").digest
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "flab_recovered", trust_remote_code=True)
    assert type(saved).__name__ == "FlabLlamaForCausalLM" and digest(saved) == first["digest"]

    # distillation recovery: 1,024 tokens counted over both processes = 8 steps of 2 x 4 x 16 tokens; the same
    # weights on both, and the KL to the dense model on held-out windows falls (by 17% here)
    distilled = first["distilled"]
    assert distilled["steps"] == second["distilled"]["steps"] == 8 and distilled["tokens"] == 1024
    assert distilled["digest"] == second["distilled"]["digest"]
    curve = distilled["curve"]
    assert [point["tokens"] for point in curve] == [0, 256, 512, 768, 1024]
    assert curve[-1]["kl_to_dense"] < 0.9 * curve[0]["kl_to_dense"], curve
    assert "checkpoint-8" in os.listdir(tmp_path / "flab_distill")
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "flab_distilled", trust_remote_code=True)
    assert digest(saved) == distilled["digest"]


def test_xtc_compress_in_two_processes(launches, monkeypatch):
    (first, second), _ = finish(launches, "xtc")
    assert first["stages"] == second["stages"]
    steps = {name.split("-")[0]: stage["steps"] for name, stage in first["stages"].items()}
    assert steps == {"layer_reduction": 8, "quantization": 4}
    reduction = next(stage for name, stage in first["stages"].items() if name.startswith("layer_reduction"))
    assert_falls(reduction["losses"])
    assert first["packed"] and first["digest"] == second["digest"]
    assert first["checkpoint"] == second["checkpoint"]
    assert os.path.isfile(os.path.join(first["checkpoint"], "xtc_stage.json"))
    # line completion: each process generated for its share of the samples; the gathered predictions are in sample
    # order and equal those of one process evaluating the saved model alone
    from benchmarks import xtc_eval as evaluation
    from xtc_hf import XTCGPT2LMHeadModel

    script = import_script("xtc_distill")
    assert first["completion"] == second["completion"] and first["completion"]["n"] == 5
    monkeypatch.setattr(evaluation, "completed_line", script.raw_continuations)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the launched processes, so that float reductions run in the same order
    try:
        model = XTCGPT2LMHeadModel.from_pretrained(first["checkpoint"])
        single = evaluation.evaluate_line_completion(
            model, script.tiny_tokenizer(), script.completion_samples(), max_new_tokens=24, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    assert len(set(single["predictions"])) >= 3  # distinct per sample: a wrong order would show
    assert first["completion"]["predictions"] == single["predictions"]
    assert first["completion"]["es"] == pytest.approx(single["es"]) and first["completion"]["em"] == single["em"]
    # process 0 alone ran over its time budget at step 3: both stopped there (without agreeing, process 1 would
    # have waited in the next gradient all-reduce for a peer that had left)
    assert first["budget"]["steps"] == second["budget"]["steps"] == 3 < first["budget"]["max_steps"]
