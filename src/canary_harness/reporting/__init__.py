"""What people see of a stage: the decision trace, its plots and the Allure report built from them."""
