"""The compliance agent."""
