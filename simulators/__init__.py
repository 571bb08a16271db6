"""Virtual OCPP chargers, scripted drivers and the fleet runners that drive the backend."""
