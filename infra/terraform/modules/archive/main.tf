# The archive: a versioned, KMS-encrypted bucket reached only over TLS, a lifecycle that really
# removes old runs, and one least-privilege policy per org on PREFIX/ORG/*.

resource "aws_kms_key" "archive" {
  description         = "${var.name} archive encryption"
  enable_key_rotation = true
  lifecycle {
    # Destroying the key makes every archive unreadable.
    prevent_destroy = true
  }
}

resource "aws_s3_bucket" "archive" {
  bucket = var.bucket_name
  # Always on: changing this attribute replaces the bucket (and its archives). Whether objects are
  # locked is decided by the retention configuration below (`object_lock_days`).
  object_lock_enabled = true
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "archive" {
  bucket = aws_s3_bucket.archive.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.archive.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket                  = aws_s3_bucket.archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Plain-HTTP requests are refused whoever sends them.
resource "aws_s3_bucket_policy" "archive" {
  bucket     = aws_s3_bucket.archive.id
  policy     = templatefile("${path.module}/bucket-policy.json.tftpl", { bucket_arn = aws_s3_bucket.archive.arn })
  depends_on = [aws_s3_bucket_public_access_block.archive]
}

# On a versioned bucket, expiration only turns the current version into a noncurrent one behind a
# delete marker: the noncurrent version must expire too (one day later), and the delete marker left
# alone then must be removed, or old runs live twice as long and `runs` lists empty prefixes.
resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket     = aws_s3_bucket.archive.id
  depends_on = [aws_s3_bucket_versioning.archive]
  rule {
    id     = "retention"
    status = "Enabled"
    filter {
      prefix = "${var.prefix}/"
    }
    expiration {
      days = var.retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }
  rule {
    id     = "remove-expired-delete-markers"
    status = "Enabled"
    filter {
      prefix = "${var.prefix}/"
    }
    expiration {
      expired_object_delete_marker = true
    }
  }
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    # flowvault aborts its multipart uploads on failure; this catches a killed task.
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_object_lock_configuration" "archive" {
  count  = var.object_lock_days > 0 ? 1 : 0
  bucket = aws_s3_bucket.archive.id
  rule {
    default_retention {
      mode = "GOVERNANCE"
      days = var.object_lock_days
    }
  }
}

# One policy per org, on that org's prefix only: a job holding one org's role can neither read nor
# overwrite another org's backups. The template is evaluated by the test suite against every S3
# call flowvault makes.
resource "aws_iam_policy" "job" {
  for_each = var.orgs
  name     = "${var.name}-${each.key}-job"
  policy = templatefile("${path.module}/job-policy.json.tftpl", {
    bucket_arn  = aws_s3_bucket.archive.arn
    org_prefix  = "${var.prefix}/${each.key}"
    kms_key_arn = aws_kms_key.archive.arn
    region      = var.region
  })
}
