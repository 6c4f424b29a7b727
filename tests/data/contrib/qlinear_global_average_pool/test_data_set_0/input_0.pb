BxJK‘ç®éÊBù=xÁãÇ—HÅp³89`
4îcTM3tJe¤oÀqbÐÛ¢gÇ¥ÕÐi5L’ÀßsU\	Néê…YIà9§GDÙ°R