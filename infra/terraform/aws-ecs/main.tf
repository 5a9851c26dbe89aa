# The ECS path: the archive and, per org, a Fargate task with its own role on a nightly
# EventBridge schedule, with alerts for failed, unstarted, undelivered and stale runs.

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

module "ecs" {
  source              = "../modules/ecs"
  name                = var.name
  region              = var.region
  bucket              = module.archive.bucket
  prefix              = var.prefix
  kms_key_arn         = module.archive.kms_key_arn
  job_policy_arns     = module.archive.job_policy_arns
  orgs                = var.orgs
  image               = var.image
  cpu_architecture    = var.cpu_architecture
  genesys_region      = var.genesys_region
  subnet_ids          = var.subnet_ids
  security_group_ids  = var.security_group_ids
  assign_public_ip    = var.assign_public_ip
  secrets_kms_key_arn = var.secrets_kms_key_arn
  alert_email         = var.alert_email
  log_retention_days  = var.log_retention_days
}
