"""Editing a file in one round trip: the replacement runs inside the sandbox, in bash.

An edit is otherwise a download and an upload (two round trips). The script below performs the
common case itself and touches the file only when the result is certain to equal what
`BaseSandbox.edit` would write: a readable, writable regular file of at most `MAX_FILE`
bytes of valid UTF-8 with no CR or NUL, in which `old_string` occurs exactly once (or at least
once with `replace_all`). Everything else (a missing file, no match, an ambiguous match, CRLF
endings, binary data) leaves the file alone and answers "fall back", and the caller takes the
download-and-upload path, which produces `BaseSandbox`'s exact results and messages.

The script needs bash and, only for files with bytes beyond printable ASCII, grep (to check them
for valid UTF-8 without CR); no python3 in the image. Everything else is a bash builtin: each
process started inside the sandbox costs about half a millisecond, and the edit is one of an
agent's most frequent calls. `read -d ''` reads the file up to the first NUL byte, so one builtin
both loads the file and tells a binary (or oversized) file apart. A daemon whose shell is bash
runs the script with `eval`; any other shell hands it to bash, and without bash the command fails
and the caller falls back. The strings travel as single-quoted words; quoted expansions in the
patterns make every character literal, and the loop replaces leftmost, non-overlapping matches,
as `str.replace` does. The script runs in the C locale, so lengths count bytes.

Each command carries a fresh token and leaves it in the sandbox's /tmp once the file is written,
so sending the same command again (a retry after a lost reply) reports the first result instead
of editing twice: the call is idempotent and safe to retry.
"""

from __future__ import annotations

import shlex
import uuid

MAX_FILE = 128 * 1024
"""Larger files go the download-and-upload way: the shell's string scans are O(n) per match."""

MAX_ARGUMENT = 96 * 1024
"""Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN); larger strings fall back."""

EDITED = "EDITED "
WRITE_FAILED = "EDIT_WRITE_FAILED"

_SCRIPT = (
    r"""
export LC_ALL=C
f=$1; all=$2; old=$3; new=$4; done=/tmp/.deepagents-edit-$5; cr='\r'; tab='\t'; nl='
'
if [ -f "$done" ]; then read -r count < "$done" && echo "EDITED $count" && exit 0; fi
[ -f "$f" ] && [ -r "$f" ] && [ -w "$f" ] || exit 5
exec 3< "$f" || exit 5
IFS= read -r -d '' -n MAX_FILE_PLUS_ONE content <&3 && exit 5
exec 3<&-
case $content in *[!\ -~"$tab$nl"]*)
  LC_ALL=C.UTF-8 grep -qav -x "[^$cr]*" "$f" && exit 5 ;;
esac
count=0; out=; rest=$content
while :; do
  case $rest in *"$old"*) ;; *) break ;; esac
  out=$out${rest%%"$old"*}$new
  rest=${rest#*"$old"}
  count=$((count + 1))
  [ "$all" = 1 ] || [ "$count" -lt 2 ] || exit 5
done
[ "$count" -ge 1 ] || exit 5
printf %s "$out$rest" > "$f" || { echo EDIT_WRITE_FAILED; exit 6; }
echo "$count" > "$done"
echo "EDITED $count"
""".replace("MAX_FILE_PLUS_ONE", str(MAX_FILE + 1))
    .replace("\\r", "\r")
    .replace("\\t", "\t")
)
"""`read` succeeds only when it stops at a NUL byte or after MAX_FILE + 1 bytes: a binary or an
oversized file, both left to the fallback. At the end of a smaller text file it fails, with the
whole content read."""


def in_place_command(path: str, old_string: str, new_string: str, replace_all: bool) -> str | None:
    """The shell command that edits `path` in place, or `None` when this edit must fall back."""
    if not old_string:
        return None
    strings = (old_string, new_string)
    if any(len(s.encode()) > MAX_ARGUMENT or "\x00" in s for s in strings) or len(path.encode()) > 4096:
        return None
    arguments = [path, "1" if replace_all else "0", *strings, uuid.uuid4().hex]
    return (
        f"set -- {' '.join(shlex.quote(a) for a in arguments)}\n"
        f"s={shlex.quote(_SCRIPT)}\n"
        '[ -n "${BASH_VERSION-}" ] || exec bash -c "$s" bash "$@"\n'
        'eval "$s"\n'
    )


def edited_occurrences(output: str | None, exit_code: int | None) -> int | None:
    """How many replacements the script made; `None` when it left the file alone (fall back).

    Raises:
        OSError: The script changed its mind too late: the write itself failed.
    """
    lines = (output or "").strip().splitlines()
    last = lines[-1] if lines else ""
    if exit_code == 0 and last.startswith(EDITED) and last[len(EDITED) :].isdigit():
        return int(last[len(EDITED) :])
    if last == WRITE_FAILED:
        raise OSError("the file could not be written in place")
    return None
