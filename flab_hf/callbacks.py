"""``Trainer`` callbacks for Flab-Pruner recovery (paper Sec. 3.5)."""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class LoRARecoveryCallback(TrainerCallback):
    """Track KL to the dense model during LoRA recovery; merge the adapters and save the model when training ends.

    On every evaluation event adds ``eval_flab_kl`` = mean token KL(P_dense || P_model) on ``eval_ids`` (ids of the
    *pruned* tokenizer; the dense model reads ``kept_token_ids[eval_ids]`` and its distribution is restricted to the
    kept ids). At the end of training it merges the LoRA weights into the base model (``merge_and_unload``), keeps
    it as ``self.merged_model`` and, if ``output_dir`` is set, saves it in the pruned format with ``tokenizer``.
    Acts on the main process only.

    Example:
        >>> callback = LoRARecoveryCallback(dense, eval_ids, kept_token_ids=kept, output_dir="recovered",
        ...                                 tokenizer=pruned_tokenizer)  # doctest: +SKIP
        >>> Trainer(model=peft_model, args=args, train_dataset=train, eval_dataset=valid,
        ...         callbacks=[callback]).train()  # doctest: +SKIP
    """

    def __init__(self, dense_model, eval_ids: torch.Tensor, kept_token_ids=None, output_dir=None, tokenizer=None,
                 batch_size: int = 4):  # fmt: skip
        self.dense_model = dense_model
        self.eval_ids = eval_ids
        self.kept = None if kept_token_ids is None else torch.as_tensor(list(kept_token_ids), dtype=torch.long)
        self.output_dir = output_dir
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.references = None
        self.merged_model = None
        self.history: list[dict] = []

    @torch.no_grad()
    def _reference_log_probs(self) -> list[torch.Tensor]:
        if self.references is None:
            device = self.dense_model.get_input_embeddings().weight.device
            self.references = []
            for batch in torch.split(self.eval_ids, self.batch_size):
                ids = batch if self.kept is None else self.kept[batch]
                logits = self.dense_model(ids.to(device)).logits.float()
                if self.kept is not None:
                    logits = logits[..., self.kept.to(device)]
                self.references.append(torch.log_softmax(logits, -1).cpu())
        return self.references

    @torch.no_grad()
    def kl_to_dense(self, model) -> float:
        references = self._reference_log_probs()
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for batch, reference in zip(torch.split(self.eval_ids, self.batch_size), references):
            log_q = torch.log_softmax(model(input_ids=batch.to(device)).logits.float(), -1).cpu()
            values = (reference.exp() * (reference - log_q)).sum(-1)
            total += float(values.sum())
            count += values.numel()
        model.train(was_training)
        return total / max(count, 1)

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        kl = self.kl_to_dense(model)
        self.history.append({"step": state.global_step, "kl": kl})
        if metrics is not None:
            metrics["eval_flab_kl"] = kl
        logger.info("step %d: KL to dense %.4f", state.global_step, kl)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or model is None:
            return
        merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        self.merged_model = merged.eval()
        if self.output_dir is not None:
            from .pruning import to_saveable
            from .recipe import save_pruned

            if self.tokenizer is None:
                raise ValueError("`tokenizer` is required to save the recovered model; pass the pruned tokenizer.")
            self.merged_model = to_saveable(self.merged_model)
            save_pruned(self.merged_model, self.tokenizer, self.output_dir, overwrite=True)


CODECARBON_HINT = "pip install 'codecarbon==3.3.2'"


def check_emissions_country(country_iso_code: str) -> str:
    """The upper-cased code if codecarbon is installed and knows this country's grid; else an error with the fix.

    Example:
        >>> check_emissions_country("fra")  # doctest: +SKIP
        'FRA'
    """
    try:
        from codecarbon.input import DataSource
    except ImportError as error:
        raise ImportError(
            f"`track_emissions={country_iso_code!r}` needs codecarbon, which is not installed: {CODECARBON_HINT}"
        ) from error
    code = str(country_iso_code).upper()
    known = DataSource().get_global_energy_mix_data()
    if code not in known:
        raise ValueError(
            f"`track_emissions={country_iso_code!r}` is not a 3-letter ISO country code codecarbon knows (e.g. "
            f"'USA', 'FRA', 'DEU'); it knows {len(known)} countries."
        )
    return code


class EmissionsCallback(TrainerCallback):
    """Energy (kWh) and CO2 (kg CO2eq) of training, measured by codecarbon's ``OfflineEmissionsTracker``.

    transformers' ``CodeCarbonCallback`` (``report_to="codecarbon"``) uses the online tracker, which looks the
    country up on the web and silently assumes Canada's grid when it cannot; this one is told the grid's country and
    never uses the network. One tracker runs per machine (local process 0; codecarbon measures the whole machine);
    at the end of training every process holds ``self.emissions``, summed over machines: ``emissions_kg_co2eq``,
    ``energy_kwh``, ``cpu_energy_kwh``, ``ram_energy_kwh``, ``duration_s`` and what was measured where.

    Example:
        >>> callback = EmissionsCallback("FRA")  # doctest: +SKIP
        >>> Trainer(model=model, args=args, train_dataset=train, callbacks=[callback]).train()  # doctest: +SKIP
        >>> callback.emissions["emissions_kg_co2eq"]  # doctest: +SKIP
    """

    def __init__(self, country_iso_code: str, measure_power_secs: float = 15.0):
        self.country_iso_code = check_emissions_country(country_iso_code)
        self.measure_power_secs = measure_power_secs
        self.tracker = None
        self.emissions = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_local_process_zero and self.tracker is None:
            from codecarbon import OfflineEmissionsTracker

            self.tracker = OfflineEmissionsTracker(
                country_iso_code=self.country_iso_code, measure_power_secs=self.measure_power_secs,
                save_to_file=False, log_level="error",
            )  # fmt: skip
            self.tracker.start()

    def on_train_end(self, args, state, control, **kwargs):
        totals = torch.zeros(5, dtype=torch.float64)  # emissions, energy, cpu energy, ram energy, machines
        data = None
        if self.tracker is not None:
            self.tracker.stop()
            data = self.tracker.final_emissions_data
            totals += torch.tensor([data.emissions, data.energy_consumed, data.cpu_energy, data.ram_energy, 1.0])
            self.tracker = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # a collective in an event every process reaches; nccl needs the tensor on the process's device
            totals = totals.to(args.device)
            torch.distributed.all_reduce(totals)
            totals = totals.cpu()
        emissions, energy, cpu_energy, ram_energy, machines = totals.tolist()
        self.emissions = {
            "emissions_kg_co2eq": emissions,
            "energy_kwh": energy,
            "cpu_energy_kwh": cpu_energy,
            "ram_energy_kwh": ram_energy,
            "machines": int(machines),
            "country_iso_code": self.country_iso_code,
            "tracker": "codecarbon.OfflineEmissionsTracker",
        }
        if data is not None:  # this machine's details (the main process's, in the saved results)
            self.emissions.update(
                duration_s=data.duration, cpu_model=data.cpu_model, cpu_power_w=data.cpu_power,
                ram_power_w=data.ram_power, codecarbon_version=data.codecarbon_version,
            )  # fmt: skip


__all__ = ["CODECARBON_HINT", "EmissionsCallback", "LoRARecoveryCallback", "check_emissions_country"]
