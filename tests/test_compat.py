"""Each accessor of hpo.compat against the installed Optuna: when Optuna renames a private, this fails here."""

from __future__ import annotations

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore

from hpo import compat


@pytest.fixture
def sqlite_study(tmp_path):
    return optuna.create_study(study_name="compat", storage=f"sqlite:///{tmp_path}/compat.db")


def test_storage_ids_and_cached_attrs(sqlite_study):
    trial = sqlite_study.ask()
    storage = compat.storage_of(sqlite_study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert storage.get_study_id_from_name("compat") == compat.study_id(sqlite_study)
    assert storage.get_trial(compat.trial_id(trial)).number == trial.number
    compat.update_cached_user_attrs(trial, {"seen": 1})
    assert trial.user_attrs["seen"] == 1


def test_rdb_storage_and_batched_write(sqlite_study):
    trial = sqlite_study.ask()
    rdb = compat.rdb_storage(compat.storage_of(sqlite_study))
    assert isinstance(rdb, optuna.storages.RDBStorage)
    assert compat.write_rdb_user_attrs(rdb, compat.trial_id(trial), {"a": 1, "b": [2, 3]}) is True
    assert sqlite_study.trials[0].user_attrs == {"a": 1, "b": [2, 3]}
    sqlite_study.tell(trial, 0.5)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        compat.write_rdb_user_attrs(rdb, compat.trial_id(trial), {"c": 1})
    assert compat.rdb_storage(optuna.storages.InMemoryStorage()) is None


def test_grid_sampler_accessors():
    sampler = optuna.samplers.GridSampler({"x": [0, 1, 2]}, seed=0)
    study = optuna.create_study(sampler=sampler)
    assert sorted(compat.grid_unvisited_ids(sampler, study)) == [0, 1, 2]
    study.optimize(lambda t: t.suggest_categorical("x", [0, 1, 2]), n_trials=1)
    assert len(compat.grid_unvisited_ids(sampler, study)) == 2
    compat.reseed_grid_sampler(sampler, 123)  # must not raise, and must keep the grid itself
    assert sorted(compat.grid_unvisited_ids(sampler, study)) != []


def test_artifact_store_folder(tmp_path):
    assert compat.artifact_store_folder(FileSystemArtifactStore(str(tmp_path))) == tmp_path
    assert compat.artifact_store_folder(object()) is None
