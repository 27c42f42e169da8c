"""What contains a sandbox beyond its namespaces: resource limits, a syscall filter, a disk quota.

`Containment.detect()` asks the kernel once, at start-up, what this machine can enforce (see
`cgroups`, `disk`, `seccomp`); the runtime applies what is there, and the sandbox DTO reports only that.
"""
