"""The engine: parameters, model loading, prompt encoding, generation, the model host and the worker protocol, worker and client."""
