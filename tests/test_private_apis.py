"""archlab leans on four library internals that have no public route. Each test here pins the
shape archlab uses, so an upgrade that moves one fails here, naming what to revisit, instead of
deep inside a resumed fit or a sweep."""

from __future__ import annotations

import inspect

import optuna
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from pytorch_lightning.loops.fit_loop import _FitLoop
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler


def test_lightning_fit_loop_can_reload_the_loader_position():
    # Used by archlab.data.batches.RestoreLoaderPosition (Lightning #20550).
    assert callable(getattr(_FitLoop, "_load_combined_loader_states", None)), (
        "Lightning removed FitLoop._load_combined_loader_states: revisit "
        "archlab.data.batches.RestoreLoaderPosition (mid-epoch resume)"
    )


def test_lightning_unrepeated_sampler_splits_without_padding():
    # Used by archlab.data.batches for val/test under DDP: every example counted once.
    data = list(range(7))
    shards = [
        list(UnrepeatedDistributedSampler(data, num_replicas=2, rank=r, shuffle=False))
        for r in range(2)
    ]
    assert sorted(shards[0] + shards[1]) == data, (
        "Lightning's UnrepeatedDistributedSampler no longer splits without padding: "
        "revisit archlab.data.batches (eval samples must be counted once under DDP)"
    )


def test_hydra_basic_sweeper_is_importable_with_its_sweep_hook():
    # archlab's grid sweeper (hydra_plugins.archlab_sweepers.grid) subclasses it.
    assert callable(getattr(BasicSweeper, "sweep", None)) and "max_batch_size" in str(
        inspect.signature(BasicSweeper.__init__)
    ), "Hydra's BasicSweeper changed: revisit hydra_plugins/archlab_sweepers/grid.py"


def test_optuna_trials_are_reachable_by_their_internal_id(tmp_path):
    # archlab.sweeps.study reports to a trial the sweeper created, by `FrozenTrial._trial_id`.
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    asked = study.ask()
    frozen = study.get_trials(deepcopy=False)[asked.number]
    again = optuna.Trial(study, frozen._trial_id)
    again.set_user_attr("seen", True)
    assert study.get_trials()[asked.number].user_attrs == {"seen": True}, (
        "optuna.Trial(study, FrozenTrial._trial_id) no longer addresses the same trial: "
        "revisit archlab.sweeps.study"
    )
