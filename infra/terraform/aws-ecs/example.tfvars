bucket_name = "my-flow-backups"
image       = "ghcr.io/flowvault/flowvault:0.1.0@sha256:0000000000000000000000000000000000000000000000000000000000000000"
orgs = {
  acme = {
    genesys_org              = "acme"
    client_id_secret_arn     = "arn:aws:secretsmanager:us-west-2:123456789012:secret:genesys/acme-AbCdEf:client_id::"
    client_secret_secret_arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:genesys/acme-AbCdEf:client_secret::"
  }
}
subnet_ids         = ["subnet-0123456789abcdef0"]
security_group_ids = ["sg-0123456789abcdef0"]
