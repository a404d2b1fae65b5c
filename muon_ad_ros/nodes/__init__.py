"""The thin rclpy layer: one module per node (imports rclpy; the rest of the package does not)."""
