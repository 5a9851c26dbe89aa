# `terraform test` (offline: a mocked AWS provider): the Kubernetes path plans with only its
# own inputs — no subnets, security groups, secret ARNs or image — and creates no ECS task,
# schedule or alert; each org's role is trusted by its own ServiceAccount only and may touch only
# its own prefix.

mock_provider "aws" {
  # Mocked values already at plan (Terraform 1.11+), so nothing is "applied" and prevent_destroy holds.
  override_during = plan
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::my-flow-backups", bucket = "my-flow-backups" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-west-2:123456789012:key/archive" }
  }
  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/flowvault-job" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/flowvault" }
  }
}

variables {
  bucket_name           = "my-flow-backups"
  eks_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE"
  orgs = {
    acme   = {}
    globex = {}
  }
}

run "the_kubernetes_path_needs_no_ecs_inputs" {
  command = plan

  assert {
    condition     = keys(output.irsa_role_arns) == ["acme", "globex"]
    error_message = "one IRSA role per org"
  }
  assert {
    condition     = output.destinations["acme"] == "s3://${output.bucket}/genesys/acme"
    error_message = "org acme writes under genesys/acme, where infra/k8s/orgs/acme points"
  }
  assert {
    condition     = strcontains(module.irsa.trust_policies["acme"], "\"system:serviceaccount:flowvault:flowvault-acme\"")
    error_message = "acme's role trusts the ServiceAccount flowvault-acme"
  }
  assert {
    condition     = !strcontains(module.irsa.trust_policies["acme"], "flowvault-globex") && !strcontains(module.irsa.trust_policies["acme"], "*")
    error_message = "acme's role trusts no other ServiceAccount"
  }
  assert {
    condition     = strcontains(module.archive.job_policies["acme"], "/genesys/acme/*") && !strcontains(module.archive.job_policies["acme"], "globex")
    error_message = "acme's policy covers acme's prefix only"
  }
}
