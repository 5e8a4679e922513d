"""The training loop of both stages: one process, or many under ``torchrun`` (DDP).

Reproducible and resumable: the model is initialised from ``seed``; sample ``n`` of rank ``r``
and the augmentation of step ``s`` are seeded from ``(seed, r, n)`` and ``(seed, r, s)``; a
checkpoint holds model, optimizer, AMP scaler, step and RNG state, so stopping and resuming
gives the same weights as an uninterrupted run. Under ``torchrun --nproc_per_node N`` the
same code wraps the net in DistributedDataParallel (gloo on CPU, nccl on GPU); rank 0 alone
writes logs, checkpoints and weights. Mixed precision and channels-last are used on CUDA only.

Files in ``out_dir``: ``checkpoint.pt`` (resume), ``<stage>.pt`` (versioned weights of the
last validation, see nets.save_weights), ``<stage>_best.pt`` (best validation Dice),
``log.jsonl`` (one JSON object per log interval / validation), ``config.json``, ``cache/``,
``provenance.json`` (the real cases that chose each weight file: training/real_uses.py).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from SpineLabelerLib import nets, provenance
from SpineLabelerLib.progress import CancelFlag, Cancelled, ProgressCallback, report
from SpineLabelerLib.training import augment as aug
from SpineLabelerLib.training import data, real_uses
from SpineLabelerLib.training.losses import bootstrapped_cross_entropy, dice_loss, dice_score
from SpineLabelerLib.training.samples import Stage1Sampling, Stage2Sampling

VAL_RANK = 1_000_000  # the rank number whose sample stream is the validation set
MIX_PARTS = ("phantom", "rendered", "rendered_phantom", "real_ct")  # what ``mix`` weighs


CHECKPOINT_NAME = "checkpoint.pt"  # in a run folder: what --resume goes on from


@dataclass
class TrainConfig:
    """Every setting of a run (a JSON file gives any subset; unknown keys are an error)."""

    seed: int = 0
    steps: int = 1000
    batch_size: int = 2
    lr: float = 1e-3
    # keep the batch-norm statistics the run starts with (--init): fine-tuning with a small
    # batch otherwise replaces them with noisy batch-of-2 estimates
    freeze_batchnorm: bool = False
    spacing_mm: float = 3.0
    size_kji: tuple[int, int, int] = (64, 64, 64)  # crop (stage 1) / patch (stage 2), voxels
    net: dict[str, Any] = field(default_factory=dict)  # NetConfig settings
    bootstrap_fraction: float = 0.10
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentSettings
    stage2_sampling: dict[str, Any] = field(default_factory=dict)  # Stage2Sampling
    stage1_sampling: dict[str, Any] = field(default_factory=dict)  # Stage1Sampling (training only)
    phantom: dict[str, Any] = field(default_factory=dict)  # keyword settings of generate_case
    train_seed_base: int = 0
    train_cases: int = 64
    val_seed_base: int = 100_000
    val_cases: int = 4
    val_samples: int = 8
    log_every: int = 10
    val_every: int = 100
    checkpoint_every: int = 50
    workers: int = 0
    threads: int = 2
    cache_in_memory: int = 16
    # Real data in the training mix (validation stays on the held-out phantom seeds: a real
    # case must not choose the weights it is measured on). ``mix``: weights of "phantom"
    # (the phantom seeds above), "rendered" (real masks rendered as CT, training.render),
    # "rendered_phantom" (phantom label and tissue maps rendered so) and "real_ct" (real CTs
    # as they are); empty: phantoms only. ``rendered_masks``: mask files or folders;
    # ``rendered_phantoms``: how many phantom maps (the first training seeds);
    # ``rendered_cases``: renders per rendered part (seeds from ``render_seed_base``),
    # cycling through its maps; ``render``: RenderSettings overrides;
    # ``real_ct``: VerSe-layout folders; ``holdout_real``: subjects (e.g. "verse005") left
    # out of both their CT and their mask, saved with the run's config and weights.
    mix: dict[str, float] = field(default_factory=dict)
    rendered_masks: list[str] = field(default_factory=list)
    rendered_phantoms: int = 0
    rendered_cases: int = 200
    render_seed_base: int = 0
    render: dict[str, Any] = field(default_factory=dict)
    real_ct: list[str] = field(default_factory=list)
    holdout_real: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known - {"stage", "comment"})
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        cfg = cls(**{k: v for k, v in raw.items() if k in known})
        cfg.size_kji = tuple(int(s) for s in cfg.size_kji)  # type: ignore[assignment]
        multiple = nets.NetConfig(**cfg.net).multiple
        if len(cfg.size_kji) != 3 or any(s % multiple for s in cfg.size_kji):
            raise ValueError(f"size_kji {cfg.size_kji} must be 3 multiples of {multiple}")
        cfg._check_mix()
        Stage1Sampling(**cfg.stage1_sampling)  # unusable settings fail here, not at step 1
        Stage2Sampling(**cfg.stage2_sampling)
        return cfg

    def _check_mix(self) -> None:
        from SpineLabelerLib.training.render import RenderSettings

        unknown = sorted(set(self.mix) - set(MIX_PARTS))
        if unknown or any(float(w) < 0 for w in self.mix.values()):
            raise ValueError(f"mix {self.mix}: weights >= 0 of {list(MIX_PARTS)}")
        if self.mix and not any(float(w) > 0 for w in self.mix.values()):
            raise ValueError(f"mix {self.mix}: no source has a weight")
        for name in ("rendered_masks", "real_ct", "holdout_real"):
            if not isinstance(getattr(self, name), list):
                raise ValueError(f"{name} must be a list")
        if self.mix.get("rendered", 0) > 0 and not self.rendered_masks:
            raise ValueError("mix.rendered needs rendered_masks")
        if self.mix.get("rendered_phantom", 0) > 0 and self.rendered_phantoms < 1:
            raise ValueError("mix.rendered_phantom needs rendered_phantoms >= 1")
        if self.mix.get("real_ct", 0) > 0 and not self.real_ct:
            raise ValueError("mix.real_ct needs real_ct folders")
        try:  # unknown render settings fail here, not mid-run
            RenderSettings(**self.render)
        except TypeError as err:
            raise ValueError(f"render {self.render}: {err}") from None

    @property
    def uses_real_data(self) -> bool:
        """Whether the config names real data of its own (then ``--data`` is not taken)."""
        return bool(self.rendered_masks or self.real_ct)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class _Run:
    """What one process knows about the distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_type: str) -> _Run:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Run()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return _Run(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns
    )


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, rank, step, 7]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def real_split(
    real: data.CaseSource, val_cases: int
) -> tuple[data.CaseSource, data.CaseSource | None]:
    """(training cases, held-out cases) of a user's folder: its last fifth, at most
    ``val_cases``; None where it is too small to hold any out. One rule for the nets'
    validation and the level head's held-out figures, so that both keep out the same cases."""
    n_val = min(val_cases, len(real) // 5)
    if n_val == 0:
        return real, None
    cut = len(real) - n_val
    return data.SubsetSource(real, range(cut)), data.SubsetSource(real, range(cut, len(real)))


def build_sources(
    cfg: TrainConfig, data_dir: str | Path | None
) -> tuple[data.CaseSource, data.CaseSource]:
    """(train source, validation source): held-out phantom seeds, or a split of a VerSe
    folder; with a ``mix``, the training source mixes phantoms, rendered label maps and real
    CTs (:func:`mixed_source`). Raises data.SourceError for data settings that name nothing
    usable, FileNotFoundError for paths that are not there."""
    if data_dir is not None:
        if cfg.uses_real_data:
            raise data.SourceError(
                "the config names its real data (rendered_masks, real_ct): give folders there, "
                "not with --data"
            )
        train, held = real_split(data.VerseSource(data_dir), cfg.val_cases)
        return train, held if held is not None else train  # too few: validated on training cases
    train_seeds = range(cfg.train_seed_base, cfg.train_seed_base + cfg.train_cases)
    val_seeds = range(cfg.val_seed_base, cfg.val_seed_base + cfg.val_cases)
    if set(train_seeds) & set(val_seeds):
        raise ValueError("training and validation phantom seeds overlap")
    phantoms = data.PhantomSource(train_seeds, cfg.phantom)
    validation = data.PhantomSource(val_seeds, cfg.phantom)
    return (mixed_source(cfg, phantoms) if cfg.mix else phantoms), validation


def mixed_source(cfg: TrainConfig, phantoms: data.PhantomSource) -> data.MixedSource:
    """The training mix of ``cfg.mix``: phantoms, rendered maps (real masks and phantom maps),
    real CTs; every held-out subject left out of masks and CTs alike. Raises
    data.SourceError where a held-out name matches no real case (a typo would hold out
    nothing)."""
    real_maps, cts = real_uses.kept_real_data(cfg)
    parts: list[tuple[data.CaseSource, float]] = [(phantoms, cfg.mix.get("phantom", 0.0))]
    seeds = range(cfg.render_seed_base, cfg.render_seed_base + cfg.rendered_cases)
    if real_maps:
        rendered = data.RenderedMaskSource(real_maps, seeds, cfg.render)
        parts.append((rendered, cfg.mix["rendered"]))
    if cfg.mix.get("rendered_phantom", 0) > 0:
        count = min(cfg.rendered_phantoms, len(phantoms))
        maps = [data.PhantomLabelMap(phantoms, n) for n in range(count)]
        rendered = data.RenderedMaskSource(maps, seeds, cfg.render)
        parts.append((rendered, cfg.mix["rendered_phantom"]))
    parts += [(source, cfg.mix["real_ct"] / len(cts)) for source in cts]
    return data.MixedSource(parts)


def compute_loss(
    stage: str,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    generator: torch.Generator,
    settings: aug.AugmentSettings,
) -> torch.Tensor:
    """Augment one batch (``x (B, C, K, J, I)``, ``y (B, K, J, I)``) and return the stage's loss."""
    device = next(model.parameters()).device
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    if stage == "stage1":
        x, (y,) = aug.augment(x, [y], settings, generator)
    else:
        memory = (x[:, 1] > 0.5).to(torch.uint8)
        ct, (memory, y) = aug.augment(x[:, :1], [memory, y], settings, generator)
        x = torch.cat([ct, memory.unsqueeze(1).to(ct.dtype)], dim=1)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(x)
    if stage == "stage1":
        return bootstrapped_cross_entropy(logits, y, cfg.bootstrap_fraction)
    return dice_loss(logits, y)


@torch.no_grad()
def validate(
    stage: str, model: torch.nn.Module, samples: list[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """Dice on fixed, unaugmented validation samples.

    Stage 1: Dice per region class (argmax) over all samples' voxels and their mean ("dice",
    classes present in the references only), and "dice_spine": spine vs background
    (p(background) < 0.5). Stage 2: mean Dice of the predicted mask per patch (an empty
    prediction of an empty target counts 1), and the same over non-empty targets only.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    device = next(model.parameters()).device
    try:
        if stage == "stage1":
            inter, total = np.zeros(4), np.zeros(4)  # index 0: spine as a whole
            for x, y in samples:
                prob = model(x[None].to(device)).softmax(1)[0].cpu()
                pred = prob.argmax(0)
                spine_pred, spine_ref = prob[0] < 0.5, y > 0
                inter[0] += int((spine_pred & spine_ref).sum())
                total[0] += int(spine_pred.sum()) + int(spine_ref.sum())
                for c in range(1, 4):
                    inter[c] += int(((pred == c) & (y == c)).sum())
                    total[c] += int((pred == c).sum()) + int((y == c).sum())
            out = {}
            for c, name in zip(range(1, 4), ("cervical", "thoracic", "lumbar")):
                if total[c] > 0:
                    out[f"dice_{name}"] = float(2 * inter[c] / total[c])
            out["dice"] = float(np.mean(list(out.values()))) if out else float("nan")
            if total[0] > 0:  # spine vs background, p(background) < 0.5: what the regions sum to
                out["dice_spine"] = float(2 * inter[0] / total[0])
            return out
        scores, filled = [], []
        for x, y in samples:
            pred = model(x[None].to(device))[0, 0].cpu() > 0
            s = dice_score(pred, y)
            scores.append(s)
            if y.any():
                filled.append(s)
        return {
            "dice": float(np.mean(scores)),
            "dice_nonempty": float(np.mean(filled)) if filled else float("nan"),
        }
    finally:
        for module, mode in modes:  # as they were: frozen batch norms stay frozen
            module.train(mode)


def _out_of_time(t0: float, limit_s: float, run: _Run, device: torch.device) -> bool:
    """Whether the time is up; under DDP rank 0 decides for all, so every rank stops together."""
    flag = torch.tensor([float(time.time() - t0 >= limit_s)], device=device)
    if run.world > 1:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    name = platform.processor() or platform.machine()
    try:  # Linux: the CPU's model name says more than the architecture
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {name}, {torch.get_num_threads()} threads of {os.cpu_count()} cores"


def set_training(model: torch.nn.Module, freeze_batchnorm: bool) -> None:
    """Training mode; with ``freeze_batchnorm`` the batch norms normalise with, and keep, their
    running statistics (their scale and shift still learn)."""
    model.train()
    if freeze_batchnorm:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def train(
    stage: str,
    cfg: TrainConfig,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    steps: int | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    device: str | None = None,
    sources: tuple[data.CaseSource, data.CaseSource] | None = None,
    command: str = "",
    time_limit_s: float | None = None,
    init_weights: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``stage`` ("stage1" | "stage2") for ``steps`` (default ``cfg.steps``) steps in total.

    ``time_limit_s`` ends the run early, validated and saved, once this process has trained
    that long (a lent GPU for a fixed time); ``--resume`` continues it later. ``init_weights``
    starts a new run from a weight file of the same stage and architecture (fine-tuning:
    on a user's own data, or on other settings), with a fresh optimizer.

    Returns a summary (steps, last validation, best Dice, wall time, rank, the trained model). ``sources`` overrides
    the phantom / VerSe sources (tests). Raises FileExistsError when ``out_dir`` already holds
    a run and ``resume`` is False.
    """
    if stage not in nets.KINDS:
        raise ValueError(f"unknown stage {stage!r}; expected one of {nets.KINDS}")
    total_steps = int(steps if steps is not None else cfg.steps)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    run = _init_distributed(dev.type)
    if dev.type == "cuda" and run.world > 1:
        dev = torch.device("cuda", run.local_rank)
        torch.cuda.set_device(dev)
    if dev.type == "cpu":
        torch.set_num_threads(max(1, cfg.threads))
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    if ckpt_path.exists() and not resume:
        raise FileExistsError(
            f"{out} already holds a run ({CHECKPOINT_NAME}); pass --resume or another --out"
        )

    torch.manual_seed(cfg.seed)
    model = nets.build_model(stage, nets.NetConfig(**cfg.net)).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    init_meta: dict[str, Any] | None = None  # the start file, and the real cases that chose it
    if init_weights is not None and not (resume and ckpt_path.exists()):
        start = nets.load_model(init_weights, stage)
        if start.config != model.config:
            raise ValueError(
                f"{init_weights} holds a {start.config} network; the config asks for {model.config}"
            )
        model.load_state_dict(start.state_dict())
        chose_init = real_uses.init_uses(init_weights)
        init_meta = {
            "file": str(init_weights),
            "sha256": start.weights_sha256,
            "real_cases": None if chose_init is None else [asdict(u) for u in chose_init],
        }
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, wall_before, best = 0, 0.0, -1.0
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=dev, weights_only=True)
        if ckpt["stage"] != stage:
            raise ValueError(f"{ckpt_path} is a {ckpt['stage']} run, not {stage}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"].cpu())  # map_location moved it
        step, wall_before, best = int(ckpt["step"]), float(ckpt["wall_s"]), float(ckpt["best_dice"])
        # a checkpoint from before the start file was kept: its real cases are unknown
        init_meta = json.loads(ckpt.get("init", '{"file": "not recorded", "real_cases": null}'))
    net = torch.nn.parallel.DistributedDataParallel(model) if run.world > 1 else model

    train_src, val_src = sources or build_sources(cfg, data_dir)
    run_uses = None  # unknown when the caller gives the sources
    if sources is None:
        run_uses = real_uses.real_case_uses(
            cfg, *((train_src, val_src) if data_dir is not None else ())
        )
    preparer = data.CasePreparer(
        cfg.spacing_mm, stage == "stage2", out / "cache" if run.main else None, cfg.cache_in_memory
    )
    sampling = Stage2Sampling(**cfg.stage2_sampling)
    dataset = data.StepSamples(
        stage, train_src, preparer, cfg.size_kji, cfg.seed, run.rank, sampling,
        stage1_sampling=Stage1Sampling(**cfg.stage1_sampling),
    )  # fmt: skip
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=data.RangeSampler(step * cfg.batch_size, total_steps * cfg.batch_size),
        num_workers=cfg.workers,
        drop_last=True,
        pin_memory=dev.type == "cuda",
    )
    settings = aug.AugmentSettings(**cfg.augment)
    val_samples: list = []
    if run.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"stage": stage, **asdict(cfg)}, indent=2))
        val_set = data.StepSamples(
            stage, val_src, preparer, cfg.size_kji, cfg.seed, VAL_RANK, sampling
        )
        val_samples = [val_set[n] for n in range(cfg.val_samples)] if cfg.val_samples else []

    def log(record: dict[str, Any]) -> None:
        if run.main:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def save(last_val: dict[str, float] | None, weights: bool) -> None:
        """Checkpoint (always) and the versioned weight file (``weights``), rank 0 only."""
        nonlocal saved_step
        saved_step = step
        if not run.main:
            return
        wall = wall_before + time.time() - t0
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "stage": stage,
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "wall_s": wall,
                "best_dice": best,
                "config": json.dumps(asdict(cfg)),
                "init": json.dumps(init_meta),
            },
            tmp,
        )
        tmp.replace(ckpt_path)
        if weights:
            meta = {
                "stage": stage,
                "steps": step,
                "samples_seen": step * cfg.batch_size * run.world,
                "wall_s": round(wall, 1),
                "hardware": hardware_description(dev),
                "processes": run.world,
                "validation": last_val,
                "config": asdict(cfg),
                "command": command,
                "initialised_from": init_meta,
            }
            nets.save_weights(model, out / f"{stage}.pt", meta)
            record_real_uses(f"{stage}.pt")

    def record_real_uses(artefact: str) -> None:
        """The weight file's provenance record: the run's real cases and its start file's;
        none where either is unknown (the file is then "provenance unknown", never held out)."""
        inherited: tuple[provenance.CaseUse, ...] = ()
        if init_meta is not None:
            if init_meta.get("real_cases") is None:
                return
            inherited = tuple(provenance.CaseUse(**u) for u in init_meta["real_cases"])
        if run_uses is not None:
            provenance.record_use(out, artefact, (*inherited, *run_uses), f"trained by: {command}")

    def validate_and_save() -> None:
        """Validate, log, write the weights and keep them as the best if they are (rank 0)."""
        nonlocal last_val, last_val_step, best
        last_val, last_val_step = validate(stage, model, val_samples), step
        log({"step": step, "validation": last_val})
        improved = last_val["dice"] > best
        best = max(best, last_val["dice"])
        save(last_val, weights=True)
        if improved:
            (out / f"{stage}_best.pt").write_bytes((out / f"{stage}.pt").read_bytes())
            record_real_uses(f"{stage}_best.pt")

    t0 = time.time()
    saved_step = step
    window: list[float] = []
    last_val: dict[str, float] | None = None
    last_val_step = step
    report(progress, f"train {stage}", step / max(total_steps, 1), f"step {step}/{total_steps}")
    set_training(net, cfg.freeze_batchnorm)
    for x, y in loader:
        if cancel is not None and cancel.is_set:
            save(last_val, weights=False)
            raise Cancelled(f"training stopped at step {step}; resume with --resume")
        loss = compute_loss(
            stage, net, x, y, cfg, _step_generator(cfg.seed, run.rank, step), settings
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        window.append(float(loss.detach()))
        if step % cfg.log_every == 0 or step == total_steps:
            record = {
                "step": step,
                "loss": float(np.mean(window)),
                "wall_s": round(wall_before + time.time() - t0, 2),
            }
            log(record)
            report(
                progress,
                f"train {stage}",
                step / total_steps,
                f"step {step}/{total_steps} loss {record['loss']:.4f}",
            )
            window = []
        if run.main and val_samples and (step % cfg.val_every == 0 or step == total_steps):
            validate_and_save()
        elif step % cfg.checkpoint_every == 0:
            save(last_val, weights=False)
        if time_limit_s is not None and _out_of_time(t0, time_limit_s, run, dev):
            break
    if run.main and val_samples and last_val_step != step:  # stopped early: by time
        validate_and_save()
    if run.world > 1:  # BN running statistics drift apart after the last forward: take rank 0's
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)
    if saved_step != step or not (out / f"{stage}.pt").exists():
        save(last_val, weights=True)
    if run.world > 1:
        dist.barrier()
        if run.owns_group:
            dist.destroy_process_group()
    return {
        "stage": stage,
        "steps": step,
        "validation": last_val,
        "best_dice": best,
        "wall_s": wall_before + time.time() - t0,
        "rank": run.rank,
        "model": model,
    }
