"""The rollout rehearsal: real revisions of this service behind local stand-ins of Cloud Run, Cloud Monitoring
and the lock bucket, driven by the real gcloud and the unmodified `python -m deploy`, under live client load.

Every stand-in is written from the public API reference and from how gcloud 528 behaves, never from the
project's own fakes or rollout code (docs/decisions.md, "The rollout rehearsal").
"""
