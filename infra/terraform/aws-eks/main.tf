# The Kubernetes path (EKS): the archive and one IRSA role per org, for the CronJobs of infra/k8s.
# Nothing here asks for subnets, security groups or secret ARNs, and nothing schedules a task:
# Kubernetes is the scheduler, the Genesys secrets are Kubernetes Secrets.

module "archive" {
  source           = "../modules/archive"
  name             = var.name
  region           = var.region
  bucket_name      = var.bucket_name
  prefix           = var.prefix
  orgs             = toset(keys(var.orgs))
  retention_days   = var.retention_days
  object_lock_days = var.object_lock_days
}

module "irsa" {
  source            = "../modules/irsa"
  name              = var.name
  oidc_provider_arn = var.eks_oidc_provider_arn
  namespace         = var.k8s_namespace
  # infra/k8s/orgs/KEY stamps ServiceAccount flowvault-KEY (kustomize nameSuffix).
  service_accounts = { for k, o in var.orgs : k => coalesce(o.service_account, "${var.name}-${k}") }
  job_policy_arns  = module.archive.job_policy_arns
}
