"""Energy and CO2 of training, measured offline by codecarbon (an optional dependency, imported lazily).

Example:
    >>> from compress_utils.emissions import EmissionsCallback
    >>> callback = EmissionsCallback("FRA")  # doctest: +SKIP
"""

from __future__ import annotations

import logging

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

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


__all__ = ["CODECARBON_HINT", "EmissionsCallback", "check_emissions_country"]
