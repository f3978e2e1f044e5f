enum HTTPCoreModule {}
