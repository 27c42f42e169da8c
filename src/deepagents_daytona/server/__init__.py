"""`deepagents-daytona serve`: the LangGraph Agent Server runtime with our deep agent, one sandbox per thread.

- `runtime`: `serve()`, which runs langgraph-api's in-memory runtime in this process;
- `graph`: the graph and its checkpointer (`ThreadCleanupCheckpointer` over SQLite in the data dir);
- `http`: the routes we add, WebDAV at `/webdav`;
- `auth`: the token, through the runtime's auth hook;
- `settings`: `ServerSettings` (`DAYTONA_SERVER_*`).

The runtime is the optional `[server]` extra (langgraph-api is Elastic License 2.0); nothing here
imports it until `serve()` runs.
"""
