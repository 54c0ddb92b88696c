"""Demo data the project makes itself: a genome with a truth set and reads, and a cohort of VCFs."""
