DROP TABLE derivatives;
