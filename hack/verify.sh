#!/usr/bin/env bash
# Regenerates everything generated and fails if that changed the tree, or
# if any module's go.mod/go.sum is not tidy. `git status --porcelain`
# rather than `git diff` so that new untracked files count as a change.
set -euo pipefail
cd "$(dirname "$0")/.."

before=$(git status --porcelain)
hack/update-codegen.sh
after=$(git status --porcelain)
if [ "$before" != "$after" ]; then
  echo "generated files are stale; run 'make generate' and commit:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi

for m in . e2e/k8sbin e2e/k8sbin-min e2e/etcdbin e2e/containerdbin hack/tools; do
  [ -f "$m/go.mod" ] || continue
  if ! (cd "$m" && go mod tidy -diff >/dev/null); then
    echo "$m: go.mod/go.sum not tidy; run 'cd $m && go mod tidy':" >&2
    (cd "$m" && go mod tidy -diff) >&2 || true
    exit 1
  fi
done
# Every reference to a document points at a file of the repository, and
# nothing refers to documents kept outside it.
go run ./hack/doclinks
# Every dependency is under an allowed licence (hack/licenses/allowed.txt).
go run ./hack/licenses
echo "verify: generated files and go.mod are up to date; documents and licences checked"
