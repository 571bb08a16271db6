"""Charger (and Central System) certification: conformance cases modelled on the public OCTT test
case list, run over the real link, with verdicts computed from the captured frames."""
