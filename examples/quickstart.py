"""Quickstart: a deep agent with one Daytona sandbox per thread, end to end.

    uv run python examples/quickstart.py [--model provider:name]

Runs on the Daytona configured by DAYTONA_API_URL / DAYTONA_API_KEY, or on an embedded
daytona_local when none is configured. The steps (two threads and their isolation, the shared
volume seen through WebDAV, clean-up when a thread is deleted) are in
`deepagents_daytona/demo/quickstart.py`, which `deepagents-daytona demo` runs too.
"""

import argparse

from deepagents_daytona.demo.quickstart import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an init_chat_model spec such as openai:gpt-4.1 (its API key set)")
    run(parser.parse_args().model)
