# The orgs of infra/k8s/orgs (acme, globex): terraform apply -var-file=example.tfvars
bucket_name           = "my-flow-backups"
eks_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
orgs = {
  acme   = {}
  globex = {}
}
