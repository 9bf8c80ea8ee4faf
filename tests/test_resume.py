"""ResumableCheckpoint: epoch checkpoints written atomically, resumed from the newest one that can be read."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from monai_onenet.handlers import ResumableCheckpoint, latest_checkpoint


def make_trainer(ckpt_dir, model, **kwargs):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(engine, batch):
        optimizer.zero_grad()
        loss = (model(batch) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()

    trainer = Engine(step)
    ResumableCheckpoint(str(ckpt_dir), {"model": model, "optimizer": optimizer}, **kwargs).attach(trainer)
    return trainer


DATA = [torch.ones(2, 3)] * 2


def test_training_resumes_from_the_last_epoch_and_ends_like_a_straight_run(tmp_path):
    torch.manual_seed(0)
    straight = torch.nn.Linear(3, 1)
    interrupted = torch.nn.Linear(3, 1)
    interrupted.load_state_dict(straight.state_dict())
    make_trainer(tmp_path / "straight", straight).run(DATA, max_epochs=3)

    make_trainer(tmp_path / "resumed", interrupted).run(DATA, max_epochs=2)
    assert latest_checkpoint(str(tmp_path / "resumed")).endswith("checkpoint_epoch=2.pt")
    resumed = torch.nn.Linear(3, 1)
    trainer = make_trainer(tmp_path / "resumed", resumed)
    trainer.run(DATA, max_epochs=3)

    assert trainer.state.epoch == 3 and trainer.state.iteration == 6
    torch.testing.assert_close(resumed.weight, straight.weight)
    assert [p.name for p in (tmp_path / "resumed").iterdir()] == ["checkpoint_epoch=3.pt"]


def test_a_run_killed_while_saving_leaves_no_truncated_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 1)
    make_trainer(tmp_path, model).run(DATA, max_epochs=1)
    real_save = torch.save

    def killed_mid_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path, model).run(DATA, max_epochs=2)
    monkeypatch.setattr(torch, "save", real_save)

    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_epoch=1.pt"]
    trainer = make_trainer(tmp_path, torch.nn.Linear(3, 1))
    trainer.run(DATA, max_epochs=2)
    assert trainer.state.epoch == 2


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short", b"not a checkpoint at all"])
def test_an_unreadable_newest_checkpoint_is_skipped_for_the_one_before(tmp_path, content, caplog):
    model = torch.nn.Linear(3, 1)
    make_trainer(tmp_path, model).run(DATA, max_epochs=1)
    (tmp_path / "checkpoint_epoch=2.pt").write_bytes(content)

    (tmp_path / "checkpoint_epoch=9.pt").write_bytes(content)

    trainer = make_trainer(tmp_path, torch.nn.Linear(3, 1))
    trainer.run(DATA, max_epochs=2)
    assert trainer.state.iteration == 4, "the run should have resumed after epoch 1 and trained epoch 2"
    assert "skipping" in caplog.text and "checkpoint_epoch=9.pt" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint_epoch=2.pt",
        "checkpoint_epoch=2.pt.unreadable",
        "checkpoint_epoch=9.pt.unreadable",
    ]


def test_no_readable_checkpoint_names_the_files_and_the_fix(tmp_path):
    (tmp_path / "checkpoint_epoch=4.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(RuntimeError, match=r"checkpoint_epoch=4\.pt.*set aside"):
        make_trainer(tmp_path, torch.nn.Linear(3, 1)).run(DATA, max_epochs=5)
    trainer = make_trainer(tmp_path, torch.nn.Linear(3, 1))
    trainer.run(DATA, max_epochs=1)
    assert trainer.state.iteration == 2, "the next run should train from scratch"


def test_a_checkpoint_of_another_network_names_the_clash(tmp_path):
    make_trainer(tmp_path, torch.nn.Linear(3, 1)).run(DATA, max_epochs=1)
    with pytest.raises(RuntimeError, match="different network"):
        make_trainer(tmp_path, torch.nn.Linear(3, 2)).run(DATA, max_epochs=2)


class NotAllowed:
    """A type torch.load(weights_only=True) refuses to unpickle."""


def test_a_readable_checkpoint_torch_load_refuses_is_not_mistaken_for_a_truncated_one(tmp_path):
    torch.save({"model": NotAllowed()}, tmp_path / "checkpoint_epoch=1.pt")
    with pytest.raises(Exception, match="Unsupported global"):
        make_trainer(tmp_path, torch.nn.Linear(3, 1)).run(DATA, max_epochs=2)
    assert (tmp_path / "checkpoint_epoch=1.pt").exists(), "a readable checkpoint must never be set aside"


def test_running_the_same_trainer_twice_saves_once_per_epoch(tmp_path):
    trainer = make_trainer(tmp_path, torch.nn.Linear(3, 1))
    trainer.run(DATA, max_epochs=1)
    trainer.run(DATA, max_epochs=2)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_epoch=2.pt"]


def test_training_from_scratch_removes_a_previous_runs_later_epochs(tmp_path):
    make_trainer(tmp_path, torch.nn.Linear(3, 1)).run(DATA, max_epochs=3)
    make_trainer(tmp_path, torch.nn.Linear(3, 1), resume=False).run(DATA, max_epochs=1)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_epoch=1.pt"]


def test_a_rank_that_does_not_save_leaves_unreadable_files_to_the_saving_rank(tmp_path):
    make_trainer(tmp_path, torch.nn.Linear(3, 1)).run(DATA, max_epochs=1)
    (tmp_path / "checkpoint_epoch=2.pt").write_bytes(b"PK\x03\x04 cut short")
    trainer = make_trainer(tmp_path, torch.nn.Linear(3, 1), save=False)
    trainer.run(DATA, max_epochs=1)
    assert trainer.state.epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
