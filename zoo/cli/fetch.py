"""`zoo fetch` and `zoo cache ls|verify|clean`."""
from __future__ import annotations

from enum import Enum
from typing import List, Optional

import typer
from rich.markup import escape

from zoo.cli.common import console, err_console, handle_errors, human_size, print_json
from zoo.cli.tables import compact_table, print_table
from zoo.errors import ChecksumError
from zoo.hub import cache_home, fetch
from zoo.hub.cache import clean_cache, list_cache, list_derived, partial_files, verify_cache
from zoo.hub.progress import terminal
from zoo.registry import load_registry
from zoo.schema import Role

cache_app = typer.Typer(help="Inspect, verify and clean the download cache (ZOO_HOME).", no_args_is_help=True)


class What(str, Enum):
    quantized = "quantized"
    fp32 = "fp32"
    pretrained = "pretrained"
    all = "all"


@handle_errors
def fetch_cmd(
    name: str = typer.Argument(..., help="Entry name or alias."),
    what: Optional[What] = typer.Option(None, "--what", help="Which artifact (default: the entry's default_artifact)."),
    force: bool = typer.Option(False, "--force", help="Download again and verify again, even if cached."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Base URL replacing scheme+host of every URL (default: ZOO_MIRROR)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Download (or find in the cache) a verified artifact and print its path."""
    recipe = load_registry().get(name)
    if what is None:
        roles: List[Role] = [recipe.default_artifact]
    elif what is What.all:
        roles = list(recipe.artifacts)
    else:
        roles = [Role(what.value)]
    show = not quiet and not as_json and terminal()
    done = [fetch(recipe, role, force=force, mirror=mirror, progress=show) for role in roles]
    if as_json:
        print_json({"name": recipe.name, "artifacts": [
            {"role": f.role.value, "url": f.url, "path": str(f.path), "sha256": f.sha256, "size": f.size} for f in done]})
        return
    for f in done:
        typer.echo(str(f.path) if len(done) == 1 else f"{f.role.value}: {f.path}")


@cache_app.command("ls")
@handle_errors
def ls_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List cached downloads, extractions and generated datasets with the entries that use them."""
    entries = list_cache()
    derived = list_derived()
    parts = partial_files()
    if as_json:
        print_json({"home": str(cache_home()), "artifacts": [
            {"sha256": e.sha256, "path": str(e.path), "size": e.size, "names": e.names, "source": e.source,
             "url": e.url, "extracted": str(e.extracted) if e.extracted else None} for e in entries],
            "derived": [{"kind": e.kind, "path": str(e.path), "size": e.size, "names": e.names,
                         "sha256": e.sha256 or None} for e in derived],
            "partial": [{"path": str(p), "size": p.stat().st_size} for p in parts]})
        return
    console.print(f"cache: {cache_home()}", markup=False)
    if not entries and not parts and not derived:
        console.print("empty")
        return
    table = compact_table(["entry", "file", "size", "sha256", "checksum from"], numeric={"size"},
                          keep_whole={"sha256"})
    for e in entries:
        table.add_row(escape(", ".join(e.names) or "?"), escape(e.path.name), human_size(e.size), e.sha256[:16], e.source)
    for e in derived:
        what = "extracted" if e.kind == "extraction" else "generated"
        table.add_row(escape(", ".join(e.names) or "?"), f"({what})", human_size(e.size), e.sha256[:16] or "–",
                      "manifest")
    if entries or derived:
        print_table(console, table)
    for p in parts:
        console.print(f"partial download: {p.name} ({human_size(p.stat().st_size)})", soft_wrap=True, markup=False)


@cache_app.command("verify")
@handle_errors
def verify_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Re-hash every cached file against the pins and the registry; exit 1 on a mismatch."""
    results = verify_cache()
    bad = [r for r in results if not r.ok]
    if as_json:
        print_json({"home": str(cache_home()), "checked": len(results), "ok": not bad, "results": [
            {"kind": r.entry.kind, "sha256": r.entry.sha256 or None, "path": str(r.entry.path), "names": r.entry.names, "ok": r.ok,
             "problem": r.problem} for r in results]})
    else:
        for r in results:
            mark = "[green]ok[/]" if r.ok else "[bold red]MISMATCH[/]"
            console.print(f"{mark}  {escape(', '.join(r.entry.names) or r.entry.sha256[:16])}  {escape(str(r.entry.path))}", soft_wrap=True)
            if r.problem:
                console.print(f"      {r.problem}", soft_wrap=True, markup=False)
        kinds = {k: sum(r.entry.kind == k for r in results) for k in ("download", "extraction", "dataset")}
        console.print(f"{len(results)} item(s) checked ({kinds['download']} download(s), {kinds['extraction']} "
                      f"extraction(s), {kinds['dataset']} dataset(s)), {len(bad)} mismatch(es)")
    if bad:
        if as_json:
            raise typer.Exit(1)
        raise ChecksumError(
            f"{len(bad)} cached item(s) no longer match their checksum or manifest",
            hint="A damaged extraction or generated dataset is rebuilt on its next use (e.g. `zoo fetch NAME`); "
                 "remove a damaged download with `zoo cache clean NAME` and fetch it again.",
        )


@cache_app.command("clean")
@handle_errors
def clean_cmd(name: Optional[str] = typer.Argument(None, help="Only this entry (default: the whole download cache).")) -> None:
    """Remove cached downloads, extractions, partial files and pins (of one entry, or all)."""
    removed = clean_cache(name)
    for path in removed:
        err_console.print(f"removed {path}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"cleaned {len(removed)} path(s) under {cache_home()}" if removed else "nothing to clean", markup=False)


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch_cmd)
    app.add_typer(cache_app, name="cache")
