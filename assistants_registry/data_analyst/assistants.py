"""The Data analyst runs Python on the chat's files: sums, tables and plots.

Its one tool is the built-in code interpreter, `run_python`: the code runs in a sandbox with
copies of the chat's files, and the pictures it draws come back into the chat. With the
offline model, code quoted in backticks is run as it is: plot `plt.plot([1, 4, 9])`.
"""

from __future__ import annotations

from assistants_registry.definitions import AssistantDefinition

DATA_ANALYST = AssistantDefinition(
    slug="data-analyst",
    name="Data analyst",
    description="Runs Python on your data: sums, tables and plots, from files you attach.",
    instructions=(
        "You are the data analyst. Answer with numbers and pictures computed by run_python, "
        "never guessed: read the chat's files from the working folder by name (pandas is not "
        "installed; use the csv module and numpy), print what the user needs to read, and "
        "draw plots with matplotlib (a figure left open is shown to the user). Then say in a "
        "sentence or two what the result shows."
    ),
    tools=("run_python",),
    is_entry=True,
)

ASSISTANTS = (DATA_ANALYST,)
