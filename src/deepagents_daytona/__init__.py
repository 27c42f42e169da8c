"""deepagents-daytona: one Daytona sandbox per LangGraph thread."""
