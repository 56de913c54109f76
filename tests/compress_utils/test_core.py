"""The shared core: one split rule, one corpus reader, counting, registration, distributed state, metric loading."""

from collections import Counter

import pytest
import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from compress_utils import (
    SPLITS,
    count_parameters,
    disk_bytes,
    distributed_state,
    load_metric,
    metric_path,
    package_source_dir,
    read_sources,
    register_auto_classes,
    source_files,
    split_of,
)


def test_split_rule_is_80_10_10_stable_and_independent_of_the_root():
    counts = Counter(split_of(f"pkg{i // 50}/m{i}.py") for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.8) < 0.02 and abs(counts["test"] / 20000 - 0.1) < 0.01
    assert split_of("/a/json/decoder.py", "/a") == split_of("json/decoder.py") == split_of("/b/json/decoder.py", "/b")
    with pytest.raises(ValueError, match=r"path='/elsewhere/x.py' is not under root='/r'"):
        split_of("/elsewhere/x.py", "/r")


def test_every_method_uses_the_core_split():
    import benchmarks.clone_detection
    import flab_hf.data
    import xtc_hf.data

    assert benchmarks.clone_detection.split_of is flab_hf.data.split_of is xtc_hf.data.split_of is split_of


def test_reader_skips_test_folders_hidden_folders_and_non_utf8(tmp_path):
    for relative in ("a.py", "pkg/b.py", "test/c.py", ".hidden/d.py", "site-packages/e.py", "notes.txt"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(f"# {relative}\n")
    (tmp_path / "latin.py").write_bytes(b"# caf\xe9\n")
    assert [p.relative_to(tmp_path).as_posix() for p in source_files(tmp_path)] == ["a.py", "pkg/b.py"]
    by_split = {split: [path for path, _ in read_sources(tmp_path, split)] for split in SPLITS}
    assert sorted(sum(by_split.values(), [])) == ["a.py", "pkg/b.py"]
    assert all(split_of(path) == split for split, paths in by_split.items() for path in paths)
    with pytest.raises(ValueError, match=r"`split` must be one of .* got 'dev'"):
        next(read_sources(tmp_path, "dev"))
    with pytest.raises(ValueError, match=r"root=.*missing.* is not a directory"):
        source_files(tmp_path / "missing")


def test_package_source_dir_finds_installed_packages_and_names_the_argument():
    assert (package_source_dir("json") / "decoder.py").is_file()
    with pytest.raises(ValueError, match="extra='no_such_package_here': no installed package"):
        package_source_dir("no_such_package_here", argument="extra")


def test_count_parameters_counts_tied_tensors_once_and_extras():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight  # tied, as lm_head and embeddings
    counts = count_parameters(model, component=lambda name: "embedding" if name.startswith("0.") else "head")
    assert counts == {"embedding": 40, "total": 40}
    extra = count_parameters(model, extra=lambda module: 7 if isinstance(module, torch.nn.Linear) else 0)
    assert extra == {"packed": 7, "total": 47}


def test_disk_bytes_of_a_folder_and_of_savables(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "config.json").write_text("{}")
    assert disk_bytes(tmp_path) == 102 and disk_bytes(str(tmp_path), suffix=".safetensors") == 100

    class Saver:
        def save_pretrained(self, folder):
            (tmp_path.__class__(folder) / "w.bin").write_bytes(b"y" * 33)

    assert disk_bytes(Saver()) == 33
    with pytest.raises(ValueError, match=r"`disk_bytes` measures folders .* got a int"):
        disk_bytes(Saver(), 3)
    with pytest.raises(ValueError, match=r"`source` must be a folder"):
        disk_bytes(tmp_path / "missing")


class _CoreTestConfig(PretrainedConfig):
    model_type = "compress-utils-core-test"


class _CoreTestModel(PreTrainedModel):
    config_class = _CoreTestConfig

    def __init__(self, config):
        super().__init__(config)
        self.linear = torch.nn.Linear(2, 2)
        self.post_init()


def test_register_auto_classes_registers_in_process_and_for_remote_code():
    register_auto_classes({_CoreTestConfig: {AutoModel: _CoreTestModel}})
    assert isinstance(AutoConfig.for_model("compress-utils-core-test"), _CoreTestConfig)
    assert isinstance(AutoModel.from_config(_CoreTestConfig()), _CoreTestModel)
    assert _CoreTestModel._auto_class == "AutoModel" and _CoreTestConfig._auto_class == "AutoConfig"

    class Nameless(PretrainedConfig):
        model_type = ""

    with pytest.raises(ValueError, match=r"`Nameless.model_type` must be set"):
        register_auto_classes({Nameless: {}})


def test_distributed_state_is_none_in_one_process(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed_state() is None


def test_metric_loader_finds_the_package_data():
    assert (metric_path("pass_at_k") / "pass_at_k.py").is_file()
    assert load_metric("pass_at_k").compute(n=[2, 2], c=[1, 0], k=[1]) == {"pass@1": 0.25}
    with pytest.raises(ValueError, match=r"`name` must be one of .* got 'accuracy'"):
        metric_path("accuracy")
