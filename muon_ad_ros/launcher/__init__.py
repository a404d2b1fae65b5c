"""Running the graph without ros2 launch: node processes, the demo and the soak run."""
