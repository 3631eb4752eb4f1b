"""Simulated gauges for the demo, the tests and the benchmarks: a Modbus PLC, an OPC UA server, the demo line."""
