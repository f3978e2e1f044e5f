enum ShmEngineModule {}
