"""``tympan corpus``: synthesize speech corpora with espeak-ng (no store involved)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

corpus_app = typer.Typer(
    name="corpus",
    help="Make synthetic speech corpora for tests, demos and ablations.",
    no_args_is_help=True,
)


@corpus_app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option("--out", metavar="DIR",
                                      help="Directory to write the corpus into.")],
    vocab: Annotated[str, typer.Option("--vocab", metavar="digits|commands|sentences",
                                       help="What the speakers say.")] = "digits",
    voices: Annotated[int, typer.Option("--voices", metavar="N",
                                        help="Number of distinct speakers (3-300).")] = 12,
    langs: Annotated[str, typer.Option("--langs", metavar="LANGS",
                                       help="Comma-separated languages: en, ko.")] = "en",
    per_speaker: Annotated[int, typer.Option("--per-speaker", metavar="N",
                                             help="Utterances per speaker and language.")] = 20,
    seed: Annotated[int, typer.Option("--seed", metavar="S",
                                      help="Seed for speakers, texts and splits.")] = 0,
    force: Annotated[bool, typer.Option("--force",
                                        help="Replace a corpus made with other arguments.")
                     ] = False,
) -> None:
    """Synthesize a speech corpus (FLAC, JSONL manifests, speaker-disjoint splits)."""
    from tympan.audio.corpus import SPLITS, synth_corpus  # numpy/scipy only when used

    languages = [lang.strip() for lang in langs.split(",")]
    corpus = synth_corpus(out, vocab=vocab, voices=voices, langs=languages,
                          utterances_per_speaker=per_speaker, seed=seed, force=force)
    counts = ", ".join(f"{len(corpus.split(name))} {name}" for name in SPLITS)
    typer.echo(f"{len(corpus.utterances)} utterances ({counts}) from {len(corpus.speakers)} "
               f"speakers, {corpus.duration / 60:.1f} minutes of 16 kHz FLAC in "
               f"{corpus.root.resolve()} (manifest: manifest.jsonl)")
