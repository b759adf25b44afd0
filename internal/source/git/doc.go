// Package git fetches git repositories for tend's Sources: it resolves a
// branch, tag, semantic version range or commit, keeps one checkout per
// Source that it updates in place with shallow (depth 1) fetches, and says
// which files changed since the previous revision so that Apps whose files
// did not change are not rendered again.
//
// It drives the git command-line client rather than go-git, because that is
// what measuring both said (bench/gitmeasure; figures in
// docs/sources-git.md): on repositories of 3,000 and 10,000 files served by
// git http-backend on loopback, the CLI did the incremental one-commit
// fetch 4-6x faster and the shallow clone 1.4-2.7x faster. Memory was a
// draw at 3,000 files (about 15 MiB PSS for the git processes, 12 MiB of
// Go heap for go-git), but go-git's grows with the tree (44 MiB PSS, 36 MiB
// heap for a 10,000-file clone) while git's stayed at 15 MiB, and the CLI's
// memory lives in short processes instead of the controller's heap.
//
// Every git command runs with a clean environment (no user or system
// gitconfig, no prompts, only the http, https and ssh transports).
// Credentials never reach argv, the repository's config or an error: a
// basic-auth header is passed as configuration through environment
// variables, an ssh key and known_hosts are written to a private temporary
// directory that is removed after the fetch, the ssh host key is checked
// strictly, and git's output is scrubbed of credentials before it becomes
// part of an error.
//
// Fetches into one checkout run one at a time, and callers asking for the
// same checkout, URL and ref while a fetch runs share its result, so many
// Apps that use one Source cost one fetch per revision.
package git
