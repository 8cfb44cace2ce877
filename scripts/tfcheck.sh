#!/usr/bin/env bash
# terraform init / validate / plan / show -json of terraform/, offline, with the real Terraform
# binary and a schema-faithful stand-in for the google provider (tools/tfcheck/google_standin.py,
# serving the published schema of hashicorp/google 6.50.0); and the offline audit of the deploy
# workflow (check-jsonschema, zizmor). Everything runs in its own virtualenv, .tfcheck-venv: the
# `tf` package's protobuf/grpcio pins are not the workspace's.
#
# Usage:
#   scripts/tfcheck.sh plan OUT_DIR [MODULE_DIR]
#                                          init + validate + plan dev and prod; writes
#                                          OUT_DIR/plan-{dev,prod}.json (terraform show -json)
#                                          and checks each plan against the provider's validators
#                                          and the API rules (tools/tfcheck/check_plan.py)
#   scripts/tfcheck.sh validate MODULE_DIR init + validate of a module directory (copied first)
#   scripts/tfcheck.sh workflow            check-jsonschema + zizmor --offline on deploy.yml and dependabot.yml
#   scripts/tfcheck.sh env                 only install the tool environment and the mirror
#
# Environment: TFCHECK_SCHEMA (default tools/tfcheck/google-6.50.0.schema.json.gz, a copy of
# shared/reference/terraform/ kept in the repository so that GitHub's CI has it too),
# TFCHECK_VENV (default .tfcheck-venv), TFCHECK_ENVIRONMENTS (default "dev prod": which tfvars
# `plan` plans; the mutation test plans dev only), TFCHECK_SKIP_VALIDATE (non-empty: `plan`
# skips the separate `terraform validate`, which `terraform plan` repeats anyway).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TFCHECK_VENV:-${repo_root}/.tfcheck-venv}"
requirements="${repo_root}/tools/tfcheck/requirements.txt"
schema="${TFCHECK_SCHEMA:-${repo_root}/tools/tfcheck/google-6.50.0.schema.json.gz}"
provider_version="6.50.0"
state_dir="${repo_root}/.tfcheck"

die() { echo "tfcheck: $*" >&2; exit 1; }

command -v terraform >/dev/null || die "terraform is not on PATH (Terraform 1.11 is expected)"
[[ -f "${schema}" ]] || die "provider schema not found: ${schema} (set TFCHECK_SCHEMA)"
schema="$(cd "$(dirname "${schema}")" && pwd)/$(basename "${schema}")"

# uv: the interpreter's module (how the Makefile installs it), else the uv on PATH (inside `uv run`,
# python3 is the project venv's, which has no uv module).
if python3 -m uv --version >/dev/null 2>&1; then uv_cmd=(python3 -m uv)
elif command -v uv >/dev/null; then uv_cmd=(uv)
else die "uv is needed (python3 -m pip install uv==0.13.9)"
fi

install_env() {
  # Reinstall only when the lock changes; the stamp holds the lock's hash.
  local stamp="${venv}/.requirements.sha256" want
  want="$(sha256sum "${requirements}" | cut -d' ' -f1)"
  if [[ ! -x "${venv}/bin/python" || "$(cat "${stamp}" 2>/dev/null)" != "${want}" ]]; then
    "${uv_cmd[@]}" venv --quiet --allow-existing --python python3 "${venv}"
    "${uv_cmd[@]}" pip sync --quiet --require-hashes --python "${venv}/bin/python" "${requirements}"
    echo "${want}" >"${stamp}"
  fi
}

# A filesystem mirror in the "unpacked" layout holding one executable per provider: a wrapper that
# starts the stand-in from the tool environment. The CLI config makes `terraform init` use it and
# never the registry.
install_mirror() {
  local platform mirror="${state_dir}/mirror" flavour dir
  export TF_CLI_CONFIG_FILE="${state_dir}/terraformrc"
  export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
  platform="$(terraform version -json | "${venv}/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["platform"])')"
  for flavour in google google-beta; do
    dir="${mirror}/registry.terraform.io/hashicorp/${flavour}/${provider_version}/${platform}"
    mkdir -p "${dir}"
    cat >"${dir}/terraform-provider-${flavour}_v${provider_version}" <<EOF
#!/bin/sh
exec "${venv}/bin/python" "${repo_root}/tools/tfcheck/google_standin.py" --schema "${schema}" --flavour ${flavour} --cache-dir "${state_dir}/schema-cache" "\$@"
EOF
    chmod +x "${dir}/terraform-provider-${flavour}_v${provider_version}"
  done
  cat >"${state_dir}/terraformrc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "${mirror}"
    include = ["registry.terraform.io/hashicorp/google", "registry.terraform.io/hashicorp/google-beta"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/google", "registry.terraform.io/hashicorp/google-beta"]
  }
}
EOF
}

# Copy a module (its .tf files and environments/, nothing Terraform generated) to a fresh folder,
# so that nothing is written into the shared working tree, then init it from the mirror.
init_copy() {
  local source="$1" work="$2"
  rm -rf "${work}"
  mkdir -p "${work}"
  (cd "${source}" && find . -path ./.terraform -prune -o \( -name '*.tf' -o -name '*.tfvars' -o -name '*.json' -o -name '*.parquet' \) -print |
    while read -r file; do mkdir -p "${work}/$(dirname "${file}")" && cp "${file}" "${work}/${file}"; done)
  # The module's backend is GCS (one state per environment); offline, a local state in the scratch
  # folder stands in for it through an override file. The committed lock file is not copied: its
  # hashes are the real provider's, which the stand-in is not.
  printf 'terraform {\n  backend "local" {}\n}\n' >"${work}/tfcheck_backend_override.tf"
  terraform -chdir="${work}" init -input=false -no-color >"${work}/init.log" 2>&1 ||
    { cat "${work}/init.log" >&2; die "terraform init failed in ${work}"; }
}

cmd="${1:-}"
case "${cmd}" in
  env)
    install_env
    mkdir -p "${state_dir}"
    install_mirror
    ;;
  validate)
    [[ $# -eq 2 ]] || die "usage: $0 validate MODULE_DIR"
    install_env
    mkdir -p "${state_dir}"
    install_mirror
    work="$(mktemp -d "${state_dir}/validate.XXXXXX")"
    trap 'rm -rf "${work}"' EXIT
    init_copy "$2" "${work}/module"
    terraform -chdir="${work}/module" validate -no-color
    ;;
  plan)
    [[ $# -eq 2 || $# -eq 3 ]] || die "usage: $0 plan OUT_DIR [MODULE_DIR]"
    module_dir="${3:-${repo_root}/terraform}"
    out="$(mkdir -p "$2" && cd "$2" && pwd)"
    install_env
    mkdir -p "${state_dir}"
    install_mirror
    work="$(mktemp -d "${state_dir}/plan.XXXXXX")"
    trap 'rm -rf "${work}"' EXIT
    init_copy "${module_dir}" "${work}/module"
    # plan validates too; the mutation test skips the separate validate to halve its time.
    [[ -n "${TFCHECK_SKIP_VALIDATE:-}" ]] || terraform -chdir="${work}/module" validate -no-color
    plans=()
    for environment in ${TFCHECK_ENVIRONMENTS:-dev prod}; do
      # An empty state: a local state file in the scratch folder that does not exist yet.
      terraform -chdir="${work}/module" plan -input=false -no-color -lock=false -refresh=false \
        -var-file="environments/${environment}.tfvars" -var "project_id=sunrise-${environment}-project" -var "github_repository=example-org/sunrise" \
        -state="${work}/${environment}.tfstate" -out="${work}/${environment}.tfplan" >"${out}/plan-${environment}.txt"
      terraform -chdir="${work}/module" show -json "${work}/${environment}.tfplan" >"${out}/plan-${environment}.json"
      grep "^Plan:" "${out}/plan-${environment}.txt" | sed "s/^/${environment}: /"
      plans+=("${out}/plan-${environment}.json")
    done
    # docs/deploy.md step 2: the first, targeted apply on an empty project (APIs, image repository,
    # secret), before any image exists. Planned for dev only, and not for the mutation test (which
    # sets TFCHECK_ENVIRONMENTS): tests/terraform/test_plan.py checks that it creates nothing that
    # needs an image or a key, and tests/test_docs_deploy.py that the doc targets these addresses.
    if [[ -z "${TFCHECK_ENVIRONMENTS:-}" ]]; then
      terraform -chdir="${work}/module" plan -input=false -no-color -lock=false -refresh=false \
        -var-file="environments/dev.tfvars" -var "project_id=sunrise-dev-project" -var "github_repository=example-org/sunrise" \
        -target=google_project_service.apis \
        -target=google_artifact_registry_repository.images \
        -target=google_secret_manager_secret.pseudonym_key \
        -state="${work}/first-apply.tfstate" -out="${work}/first-apply.tfplan" >"${out}/plan-dev-first-apply.txt"
      terraform -chdir="${work}/module" show -json "${work}/first-apply.tfplan" >"${out}/plan-dev-first-apply.json"
      grep "^Plan:" "${out}/plan-dev-first-apply.txt" | sed "s/^/dev, docs\/deploy.md step 2: /"
    fi
    # What the provider validates only with every value known, and what only the APIs enforce.
    "${venv}/bin/python" "${repo_root}/tools/tfcheck/check_plan.py" "${plans[@]}"
    ;;
  workflow)
    install_env
    workflow="${repo_root}/.github/workflows/deploy.yml"
    "${venv}/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflow}"
    "${venv}/bin/zizmor" --offline --no-progress "${workflow}"
    # Dependabot's configuration: the updates of the pinned base image and actions.
    dependabot="${repo_root}/.github/dependabot.yml"
    "${venv}/bin/check-jsonschema" --builtin-schema vendor.dependabot "${dependabot}"
    "${venv}/bin/zizmor" --offline --no-progress "${dependabot}"
    ;;
  *)
    die "usage: $0 {plan OUT_DIR|validate MODULE_DIR|workflow|env}"
    ;;
esac
