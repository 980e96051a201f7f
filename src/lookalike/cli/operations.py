"""Operations commands: back up a home while the server runs, and restore one into an empty home."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lookalike.cli.common import app, errors, out
from lookalike.config import get_settings


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="The backup's folder (made; it must not exist unless --replace).")],
    features: Annotated[bool, typer.Option(help="Include the feature cache (large; saves re-running the backbone "
                                                "after a restore with Milvus or a new head).")] = False,
    images: Annotated[bool, typer.Option(help="Include the images downloaded from product feeds.")] = False,
    replace: Annotated[bool, typer.Option(help="Replace an existing backup at DEST, once the new one is whole.")
                       ] = False,
) -> None:
    """Back up the home (catalog database, index, heads, models; a manifest with checksums) while the server runs:
    catalog changes wait for the copy, searches go on. A backup killed half-way leaves the previous one intact."""
    from lookalike.backup import backup as make_backup

    with errors():
        report = make_backup(get_settings(), dest, features=features, images=images, replace=replace)
    out.print(f"backed up to {report.path}: {report.files} files, {report.bytes / 2**20:,.1f} MB in "
              f"{report.seconds:.1f} s ({report.database} database, {report.vector_store} index)")


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A folder written by `lookalike backup`.")],
) -> None:
    """Restore a backup into the home (LOOKALIKE_HOME), which must be empty, after checking every file; with
    Milvus, the next command re-embeds the catalog into the collection configured."""
    from lookalike.backup import restore as restore_backup

    settings = get_settings()
    with errors():
        manifest = restore_backup(settings, source)
    out.print(f"restored {len(manifest['files'])} files from {source} (made {manifest['created']}) into "
              f"{settings.home}")
