"""A tiny pitch classifier trained on synthetic tones, recorded with tympan.

Until the speech recipes land, this is what `make demo` runs: three short runs that differ
in width and learning rate, each logging loss and learning rate per step, validation
accuracy per epoch, a few input clips (with the model's guess as caption) and the trained
model as an artifact.

    make demo                                  # runs this, then `tympan runs` / `tympan show`
    .venv/bin/python recipes/demo.py --epochs 2 --store /tmp/demo-store
    .venv/bin/tympan runs --store /tmp/demo-store --project demo
"""

from __future__ import annotations

import argparse
import io
import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

import tympan

PITCHES_HZ = (220.0, 330.0, 440.0, 660.0)  # the four classes


@dataclass(frozen=True)
class Config:
    sample_rate: int = 8000  # Hz; tones are synthesized at this rate
    clip_seconds: float = 0.25  # length of one training clip
    noise: float = 0.6  # std of white noise added to a 0.5-amplitude tone
    hidden: int = 32  # channels of the conv layers
    lr: float = 3e-3  # peak learning rate (cosine decay over training)
    epochs: int = 4  # passes over the training set
    train_clips: int = 1024  # clips per epoch
    batch_size: int = 64
    seed: int = 0


def make_clips(
    cfg: Config, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy tones of random phase and slightly detuned pitch, and their class labels."""
    labels = torch.randint(len(PITCHES_HZ), (n,), generator=generator)
    freqs = torch.tensor(PITCHES_HZ)[labels] * (1 + 0.02 * torch.randn(n, generator=generator))
    t = torch.arange(int(cfg.sample_rate * cfg.clip_seconds)) / cfg.sample_rate
    phase = 2 * math.pi * torch.rand(n, 1, generator=generator)
    clean = 0.5 * torch.sin(2 * math.pi * freqs[:, None] * t + phase)
    return clean + cfg.noise * torch.randn(clean.shape, generator=generator), labels


class PitchNet(nn.Module):
    """Log-magnitude STFT -> two conv layers over frequency -> class scores."""

    def __init__(self, hidden: int, n_fft: int = 256) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft))
        self.net = nn.Sequential(
            nn.Conv1d(n_fft // 2 + 1, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(hidden, len(PITCHES_HZ)),
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav, self.n_fft, hop_length=self.n_fft // 4, window=self.window,
                          return_complex=True)
        return self.net(torch.log1p(spec.abs()))


def train(cfg: Config, store: str | None) -> str:
    tympan.seed_everything(cfg.seed)
    run = tympan.init(project="demo", config=asdict(cfg), tags=["synthetic", "demo"], store=store)
    gen = torch.Generator().manual_seed(cfg.seed)
    val_x, val_y = make_clips(cfg, 256, gen)
    model = PitchNet(cfg.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    steps_per_epoch = cfg.train_clips // cfg.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    step = 0
    with run:
        for epoch in range(cfg.epochs):
            model.train()
            for _ in range(steps_per_epoch):
                x, y = make_clips(cfg, cfg.batch_size, gen)
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                run.log({"train/loss": loss, "lr": sched.get_last_lr()[0]}, step=step)
                sched.step()
                step += 1
            model.eval()
            with torch.no_grad():
                logits = model(val_x)
                val_loss = nn.functional.cross_entropy(logits, val_y).item()
                guess = logits.argmax(-1)
            run.log({"val_loss": val_loss, "val_acc": (guess == val_y).float().mean().item(),
                     "epoch": epoch}, step=step)
            for i in range(2):
                caption = (f"true {PITCHES_HZ[val_y[i]]:.0f} Hz, "
                           f"heard {PITCHES_HZ[guess[i]]:.0f} Hz")
                run.log_audio(f"val/clip{i}", val_x[i], cfg.sample_rate, step=step,
                              caption=caption)
        # The checkpoint carries its resolved config and the run id, whose record holds
        # the git commit, diff and packages: enough to rebuild exactly this model.
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "config": asdict(cfg), "run_id": run.id},
                   buffer)
        run.log_artifact(buffer.getvalue(), name="model.pt")
        print(f"{run.name}: val_acc={run.summary['val_acc'].last:.3f} "
              f"(hidden={cfg.hidden}, lr={cfg.lr})")
    return run.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=Config.epochs)
    parser.add_argument("--store", default=None, help="store location (default: TYMPAN_STORE)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    base = Config(epochs=args.epochs)
    run_id = ""
    for variant in (replace(base, hidden=8, lr=1e-3), replace(base, hidden=32, lr=1e-3),
                    replace(base, hidden=32, lr=3e-3)):
        run_id = train(variant, args.store)
    print(run_id)  # last line: the id `make demo` passes to `tympan show`


if __name__ == "__main__":
    main()
