"""Where the gateway sends what it stores: the MQTT northbound (mqtt.py) and the line-side service (websocket/)."""
