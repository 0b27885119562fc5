"""Security scanning: findings with severity for definitions and for the deployment."""
