"""`redline study`: a matrix of lab configurations, each measured by one job, resumable."""
