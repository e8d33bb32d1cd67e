"""What a training run did, epoch by epoch, and why it ended."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_validation_loss: float = float("inf")  # the loss at the best epoch
    stopped: str = ""  # why training ended
    seconds: float = 0.0
    monitor: str = "loss"  # what picked the best epoch: the loss or a validation metric
    best_score: float = float("inf")  # the monitored value at the best epoch, lower is better

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "monitor": self.monitor,
            "best_score": self.best_score,
            "stopped": self.stopped,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(**data)
