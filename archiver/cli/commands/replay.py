"""``archiver replay``: the archive in a browser, through pywb."""

from __future__ import annotations

import json
from pathlib import Path

import click

from archiver.cli.context import open_archive, say_read_only
from archiver.cli.options import archive_dir_option, format_option
from archiver.core.text import printable
from archiver.ops.replay import DEFAULT_HOST, DEFAULT_PORT, NOT_VERIFIED


@click.command("replay")
@click.argument("capture_ids", nargs=-1, metavar="[CAPTURE]...")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to serve on; 0: any free port (the URLs printed say which).",
)
@click.option(
    "--bind",
    default=DEFAULT_HOST,
    show_default=True,
    metavar="ADDRESS",
    help="Address to listen on. Anything but loopback (127.0.0.1, ::1) lets whoever "
    "reaches this machine read the archive: said as a warning.",
)
@format_option("text", "json", default="text")
@archive_dir_option
def replay_command(
    capture_ids: tuple[str, ...], port: int, bind: str, output_format: str, archive_dir: Path
) -> None:
    """Open the archive in a browser: pywb serves it until Ctrl-C.

    Prints the replay URL of each captured page, one per line (with --format json, one
    line of JSON with the URLs, the port, and each page's raw_url: its bytes as captured,
    for scripts; a browser opening it fetches from the live web), then serves until
    Ctrl-C or SIGTERM
    (exit status 130 or 143, as for every command). All captures, or the CAPTURE ids
    named. Each capture is a pywb collection of its own, named by its id: a URL shows
    that capture and no other; /archive/ holds every capture replayed together. The
    WARC files are read where they are (nothing is copied) from an index made from the
    archive's own; a capture whose files are missing, outside warc/, or of another size
    than its index or signed manifest says is left out, with a note; responses to other
    requests than GET (a page's beacons) are not served. Replay does not verify: it shows
    what the files hold now; `archiver verify` says whether that is what was signed.
    pywb's messages go to a log file shown only if it fails. Needs the optional extra:
    pip install 'archiver[replay]'

    \b
    Examples:
      archiver replay
      archiver replay 20200812100000-0123456789 --port 8090
      archiver replay --port 0 --format json
    """
    archive = open_archive(archive_dir)
    server = archive.replay(capture_ids, host=bind, port=port)
    say_read_only(archive, "replay")
    click.echo(f"note: {NOT_VERIFIED}", err=True)
    for note in server.plan.notes:
        click.echo(f"note: {printable(note)}", err=True)
    with server:
        if not server.loopback:
            click.echo(
                f"warning: listening on {server.host}, not loopback: whoever can reach "
                f"this machine on port {server.port} can read the archive",
                err=True,
            )
        if output_format == "json":
            click.echo(json.dumps(server.to_json(), ensure_ascii=False))
        else:  # never the raw URLs: opened in a browser, they reach the live web
            for url in server.urls:
                click.echo(printable(url))
        click.echo(
            f"pywb serves {archive_dir} on {server.base_url}/ (started in "
            f"{server.startup_seconds:.1f} s), each capture in its own collection as "
            f"printed, all of them in {server.all_url}; Ctrl-C stops it",
            err=True,
        )
        server.wait()
