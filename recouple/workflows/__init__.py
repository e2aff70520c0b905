"""What runs on a cohort: cohort coupling, cohort inference, the study
pipeline, the report and the demo. Workflows call the public API; nothing
below them imports a workflow."""
