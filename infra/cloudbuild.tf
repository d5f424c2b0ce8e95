# The Cloud Build trigger: a push to the deploy branch runs cloudbuild.yaml (test, package,
# terraform apply) as the deployer account (created once by the operator
# with the roles listed in docs/DEPLOY.md: infra/ never grants itself administration). Created only when github_owner is set (the GitHub
# connection must be made once in the console, see docs/DEPLOY.md).

resource "google_cloudbuild_trigger" "deploy" {
  count           = var.github_owner == "" || var.deployer_service_account == "" ? 0 : 1
  project         = var.project
  location        = "global"
  name            = "keyway-deploy"
  description     = "keyway: test, package, deploy"
  filename        = "cloudbuild.yaml"
  service_account = "projects/${var.project}/serviceAccounts/${var.deployer_service_account}"

  github {
    owner = var.github_owner
    name  = var.github_repo
    push {
      branch = var.deploy_branch
    }
  }

  substitutions = {
    _REGION          = var.region
    _TF_STATE_BUCKET = var.tf_state_bucket
  }

  depends_on = [google_project_service.api]
}
