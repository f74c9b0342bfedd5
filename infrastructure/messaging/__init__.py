"""Bus adapters: RabbitMQ (aio-pika) for the multi-process swarm, in-memory for one process."""
