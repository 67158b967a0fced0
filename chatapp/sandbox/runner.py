"""Runs inside the sandbox (chatapp/sandbox/bubblewrap.py), as the unprivileged user: the
user's `main.py`, then the files it left in `outputs/` sent back as a tar stream on the pipe
$CHATAPP_OUTPUTS_FD.

Open matplotlib figures are saved as outputs/figure-N.png unless the code saved a picture
itself, so `plt.plot(...)` alone answers with a picture. Nothing here is trusted by the
server: it reads that pipe with limits and keeps only plain files.
"""

import os
import runpy
import sys
import tarfile
import traceback

MAIN = "/code/main.py"
OUTPUTS = "outputs"
PICTURES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".pdf")


def run_main() -> int:
    try:
        runpy.run_path(MAIN, run_name="__main__")
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException as error:  # the user's code failed: show its own frames only
        frames = traceback.extract_tb(error.__traceback__)
        own = [frame for frame in frames if frame.filename.endswith(MAIN)]
        print("Traceback (most recent call last):", file=sys.stderr)
        print("".join(traceback.format_list(own)), end="", file=sys.stderr)
        print("".join(traceback.format_exception_only(error)), end="", file=sys.stderr)
        return 1
    return 0


def save_open_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None or any(name.lower().endswith(PICTURES) for name in os.listdir(OUTPUTS)):
        return
    for number in pyplot.get_fignums():
        pyplot.figure(number).savefig(os.path.join(OUTPUTS, f"figure-{number}.png"))


def send_outputs() -> None:
    pipe = os.fdopen(int(os.environ["CHATAPP_OUTPUTS_FD"]), "wb")
    with pipe, tarfile.open(fileobj=pipe, mode="w|") as archive:
        for name in sorted(os.listdir(OUTPUTS)):
            path = os.path.join(OUTPUTS, name)
            if os.path.isfile(path) and not os.path.islink(path):
                archive.add(path, arcname=name, recursive=False)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())  # the user's code may import its own modules
    status = run_main()
    sys.stdout.flush()
    try:
        save_open_figures()
    except Exception as error:
        print(f"Could not save the open figures: {error}", file=sys.stderr)
    send_outputs()
    sys.exit(status)
